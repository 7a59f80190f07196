"""The outputs of a run: the terminal table, the Markdown report and the JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pytest_kruise_agents.conformance.registry import by_id
from pytest_kruise_agents.conformance.report import (
    Outcome,
    clean,
    render_table,
    summary_line,
    to_junit,
    to_markdown,
    unwritable,
)

OUTCOMES = [
    Outcome(by_id("core.create"), "pass", duration=0.25),
    Outcome(
        by_id("core.kill"), "fail", "DELETE /sandboxes/x: expected HTTP 204, but saw HTTP 200 |x|"
    ),
    Outcome(by_id("kruise.no-stock"), "skip", "no template without stock was given"),
]
INFO = {"API URL": "http://127.0.0.1:1", "Levels": "core,kruise"}


def test_summary_counts_each_status() -> None:
    assert summary_line(OUTCOMES) == "1 passed, 1 failed, 1 skipped"


def test_table_shows_each_check_with_its_result_and_message() -> None:
    text = render_table(OUTCOMES, width=200)
    lines = {
        line.split()[1]: line for line in text.splitlines() if "core." in line or "kruise." in line
    }
    assert "PASS" in lines["core.create"]
    assert (
        "FAIL" in lines["core.kill"] and "expected HTTP 204, but saw HTTP 200" in lines["core.kill"]
    )
    assert "SKIP" in lines["kruise.no-stock"]
    assert text.rstrip().endswith("1 passed, 1 failed, 1 skipped")


def test_markdown_report_lists_checks_by_level_with_behaviour_and_reference() -> None:
    md = to_markdown(OUTCOMES, INFO)
    assert md.startswith("# E2B conformance report\n")
    assert "- **API URL**: http://127.0.0.1:1" in md
    assert "**Result: 1 passed, 1 failed, 1 skipped**" in md
    assert "## core (1 passed, 1 failed, 0 skipped)" in md
    assert "## kruise (0 passed, 0 failed, 1 skipped)" in md
    assert "## envd" not in md
    kill = next(line for line in md.splitlines() if line.startswith("| `core.kill`"))
    assert "| FAIL |" in kill and by_id("core.kill").section in kill
    assert "\\|x\\|" in kill  # a | in a message does not break the table


def test_junit_has_one_testcase_per_check_named_by_id() -> None:
    root = ET.fromstring(to_junit(OUTCOMES, INFO).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        "e2b-conformance",
        "3",
        "1",
        "1",
    )
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["core.kill"].get("classname") == "conformance.core"
    failure = cases["core.kill"].find("failure")
    assert failure is not None and "but saw HTTP 200" in (failure.get("message") or "")
    assert cases["kruise.no-stock"].find("skipped") is not None
    assert (
        cases["core.create"].find("failure") is None
        and cases["core.create"].find("skipped") is None
    )


def test_control_characters_are_escaped_so_the_junit_parses_and_the_terminal_is_safe() -> None:
    raw = [Outcome(by_id("core.errors"), "fail", "saw HTTP 404 not found \x00\x01\x1b[31m")]
    junit = to_junit(raw, {"Server": "x\x07y"})
    failure = ET.fromstring(junit.split("\n", 1)[1]).find(".//failure")
    assert failure is not None
    assert failure.get("message") == "saw HTTP 404 not found \\x00\\x01\\x1b[31m"
    assert "\x1b" not in render_table(raw, width=200)
    assert "\x00" not in to_markdown(raw, {})


def test_an_interrupted_run_says_so_in_the_summary_and_as_a_junit_error() -> None:
    stopped = Outcome(by_id("core.timeout"), "pass", duration=1.0)
    said = "INTERRUPTED during core.timeout; the checks after it did not run"
    assert summary_line(OUTCOMES, said) == f"1 passed, 1 failed, 1 skipped; {said}"
    assert render_table(OUTCOMES, width=200, interrupted=said).rstrip().endswith(said)
    assert f"**Result: 1 passed, 1 failed, 1 skipped; {said}**" in to_markdown(
        OUTCOMES, INFO, interrupted=said
    )
    suite = ET.fromstring(to_junit(OUTCOMES, INFO, interrupted=[stopped]).split("\n", 1)[1])
    case = next(c for c in suite.iter("testcase") if c.get("name") == "core.timeout")
    error = case.find("error")
    assert error is not None and error.get("message") == "interrupted before it ended"
    testsuite = suite.find("testsuite")
    assert testsuite is not None
    assert (testsuite.get("tests"), testsuite.get("errors")) == ("4", "1")


def test_characters_xml_cannot_hold_are_escaped_so_every_report_can_be_written(
    tmp_path: Path,
) -> None:
    """Server text may carry U+FFFF or a lone surrogate (both legal in a JSON string): the
    JUnit XML still parses, and every output encodes as UTF-8, showing them as ``\\uXXXX``."""
    said = "run_code: expected 'hello\\n', but saw hel\uffffl\ud800o\udfff\ufffe"
    shown = "run_code: expected 'hello\\n', but saw hel\\uffffl\\ud800o\\udfff\\ufffe"
    raw = [Outcome(by_id("code.run"), "fail", said)]
    junit = to_junit(raw, {"Server": "x\uffff"})
    root = ET.fromstring(junit.encode("utf-8").split(b"\n", 1)[1])
    failure = root.find(".//failure")
    assert failure is not None and failure.get("message") == shown
    prop = root.find(".//property[@name='Server']")
    assert prop is not None and prop.get("value") == "x\\uffff"
    markdown = to_markdown(raw, {})
    assert shown in markdown
    table = render_table(raw, width=400)
    assert "hel\\uffffl\\ud800o" in table
    for text in (junit, markdown, table):
        (tmp_path / "out").write_text(text, encoding="utf-8")  # no UnicodeEncodeError


def test_other_non_ascii_text_is_kept() -> None:
    kept = "saw 'conformance ✓ text' and 😀 and \u00e9"
    assert clean(kept) == kept


def test_each_total_counts_its_own_status() -> None:
    """Two passes, one failure, three skips: no total is read from another status's count."""
    many = [
        Outcome(by_id("core.create"), "pass"),
        Outcome(by_id("core.get"), "pass"),
        Outcome(by_id("core.kill"), "fail", "no"),
        Outcome(by_id("kruise.label"), "skip", "no kruise"),
        Outcome(by_id("kruise.no-stock"), "skip", "no template"),
        Outcome(by_id("kruise.never-timeout"), "skip", "no kruise"),
    ]
    assert summary_line(many) == "2 passed, 1 failed, 3 skipped"
    assert render_table(many, width=200).rstrip().endswith("2 passed, 1 failed, 3 skipped")
    md = to_markdown(many, INFO)
    assert "**Result: 2 passed, 1 failed, 3 skipped**" in md
    assert "## core (2 passed, 1 failed, 0 skipped)" in md
    assert "## kruise (0 passed, 0 failed, 3 skipped)" in md
    suite = ET.fromstring(to_junit(many, INFO).split("\n", 1)[1]).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "1", "3")


def test_the_markdown_report_lists_the_levels_in_catalogue_order() -> None:
    """core, lifecycle, envd, code, kruise: whatever order the outcomes come in."""
    shuffled = [
        Outcome(by_id("kruise.no-stock"), "pass"),
        Outcome(by_id("code.run"), "pass"),
        Outcome(by_id("envd.health"), "pass"),
        Outcome(by_id("lifecycle.pause"), "pass"),
        Outcome(by_id("core.create"), "pass"),
    ]
    md = to_markdown(shuffled, {})
    heads = [line.split()[1] for line in md.splitlines() if line.startswith("## ")]
    assert heads == ["core", "lifecycle", "envd", "code", "kruise"]


def test_a_tag_in_server_text_shows_in_the_markdown_report_not_as_html() -> None:
    raw = [Outcome(by_id("core.errors"), "fail", "saw HTTP 502 <html><b>Bad Gateway</b>")]
    row = next(line for line in to_markdown(raw, {}).splitlines() if "`core.errors`" in line)
    assert "saw HTTP 502 &lt;html>&lt;b>Bad Gateway&lt;/b>" in row
    assert "<html>" not in row


def test_c1_control_characters_and_delete_are_escaped_too() -> None:
    """U+007F..U+009F: DEL and the C1 controls (U+009B is a terminal's CSI, as ESC [ is)."""
    raw = [Outcome(by_id("core.errors"), "fail", "saw \x7f\x85\x9b31m red")]
    assert clean("saw \x7f\x85\x9b31m red") == "saw \\x7f\\x85\\x9b31m red"
    assert "\x9b" not in render_table(raw, width=200)
    failure = ET.fromstring(to_junit(raw, {}).split("\n", 1)[1]).find(".//failure")
    assert failure is not None and failure.get("message") == "saw \\x7f\\x85\\x9b31m red"


def test_a_junit_failure_carries_its_message_as_text_too() -> None:
    suite = ET.fromstring(to_junit(OUTCOMES, INFO).split("\n", 1)[1])
    failure = suite.find(".//testcase[@name='core.kill']/failure")
    assert failure is not None
    assert failure.text == "DELETE /sandboxes/x: expected HTTP 204, but saw HTTP 200 |x|"


def test_an_interrupted_check_is_a_junit_error_not_a_failure_and_its_time_counts() -> None:
    stopped = Outcome(by_id("core.timeout"), "pass", duration=1.5)
    root = ET.fromstring(to_junit(OUTCOMES, INFO, interrupted=[stopped]).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
    assert suite.get("time") == "1.750"  # 0.25 s of core.create + 1.5 s of the stopped check


def test_a_writable_path_is_left_as_it_was(tmp_path: Path) -> None:
    """Trying whether a report can be written creates no file, and empties none."""
    new, old = tmp_path / "new.md", tmp_path / "old.md"
    old.write_text("an earlier report", encoding="utf-8")
    assert unwritable(new) is None and unwritable(old) is None
    assert not new.exists()
    assert old.read_text(encoding="utf-8") == "an earlier report"
    missing_dir = tmp_path / "nope" / "out.md"
    assert unwritable(missing_dir) == f"cannot write {missing_dir}: No such file or directory"
