"""pytest-kruise-agents: the OpenKruise Agents claim system, reproduced in Python.

The top-level package stays import-light: the pytest plugin loads it in every
test run, so nothing heavy is imported here.

PYTEST_DONT_REWRITE: pytest marks every top-level package of a distribution
with a ``pytest11`` entry point for assertion rewriting, and warns (an error
under ``filterwarnings = error``) when one was imported before ``pytest.main()``
ran, as a script or a notebook that uses the library and then runs its tests
does. This module has no ``assert`` to rewrite; the marker stops the warning.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
