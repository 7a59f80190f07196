"""The quickstarts of README.md and docs/plugin.md run as written, as a downstream suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^```python\n# (\w+\.py)\b[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", ["README.md", "docs/plugin.md"])
def test_the_quickstart_suite_passes(suite: pytest.Pytester, page: str) -> None:
    files = dict(_BLOCK.findall((ROOT / page).read_text()))
    assert set(files) == {"app.py", "test_app.py"}, f"{page}: the quickstart's two files"
    for name, code in files.items():
        suite.path.joinpath(name).write_text(code)
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
