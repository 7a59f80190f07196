"""``python -m pytest_kruise_agents``: the ``kruise-agents`` command, for an environment whose
scripts directory is not on ``PATH``."""

from __future__ import annotations

from pytest_kruise_agents.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
