"""The SimPy fake cluster."""

__all__: list[str] = []
