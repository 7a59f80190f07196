"""pytest-kruise-agents: the OpenKruise Agents claim system, reproduced in Python.

The top-level package stays import-light: the pytest plugin loads it in every
test run, so nothing heavy is imported here.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
