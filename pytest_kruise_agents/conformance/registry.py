"""The catalogue of conformance checks: id, behaviour, reference section, level, dependencies.

Every check of the suite is one :class:`Check` here and one test function
(marked with :func:`pytest_kruise_agents.conformance.plugin.check`) in the
level's module. The catalogue is listed in dependency order: a check only
depends on checks listed before it, so running the checks in this order
runs every dependency first. A check whose dependency failed is not run and
is reported as failed ("blocked"); one whose dependency was skipped is
skipped.

``section`` names the section of the research report the behaviour comes
from: ``E2B §n`` is the E2B protocol report (what the official SDKs send and
expect), ``Kruise §n`` the OpenKruise Agents report (what the sandbox-manager
does); ``docs/conformance.md`` links both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "CHECKS",
    "LEVELS",
    "Check",
    "Level",
    "by_id",
    "dependents",
    "parse_levels",
    "select",
]

Level = Literal["core", "lifecycle", "envd", "code", "kruise"]

LEVELS: Final[tuple[Level, ...]] = ("core", "lifecycle", "envd", "code", "kruise")
"""Every level, in the order reports list them."""


@dataclass(frozen=True, slots=True)
class Check:
    """One behaviour a server must show.

    :param id: ``<level>.<name>``, stable: reports and CI configurations name checks by it.
    :param statement: the behaviour, in one line.
    :param section: where the behaviour is documented (see the module docstring).
    :param level: the level it belongs to.
    :param depends: ids of checks that must pass for this one to be meaningful.
    """

    id: str
    statement: str
    section: str
    level: Level
    depends: tuple[str, ...] = ()


def _c(id: str, statement: str, section: str, *depends: str) -> Check:
    level = id.split(".", 1)[0]
    if level not in LEVELS:
        raise ValueError(f"check {id!r}: unknown level {level!r}")
    return Check(id, statement, section, level, tuple(depends))


CHECKS: Final[tuple[Check, ...]] = (
    # -- core: the control plane every SDK call goes through --------------------------------
    _c(
        "core.errors",
        "Error answers (unknown sandbox on get, kill and timeout; invalid create body) are JSON "
        "objects with an integer code (by convention the HTTP status; the schema asks no more) "
        "and a string message.",
        "E2B §2.1, §8.6",
    ),
    _c(
        "core.unknown-sandbox",
        "Connect (on the installed SDK's route) and pause of a sandbox that does not exist "
        "answer 404 with a JSON error, as get, kill and timeout do; the SDK's Sandbox.connect "
        "raises its not-found exception. No other check depends on it.",
        "E2B §2.2, §2.5, §8.5; Kruise §6.1, §6.9",
        "core.errors",
    ),
    _c(
        "core.auth",
        "A request without X-API-Key, or with an unknown key, answers 401 with a JSON error on "
        "every route (create, list, and get, kill, timeout, pause and connect of a sandbox, "
        "before any lookup of it), also under /kruise/api when the server serves that prefix; "
        "the other SDK generation's create answers 401 too, or 404 or 405 if the server does "
        "not serve it; the SDK raises AuthenticationException.",
        "E2B §2.1, §2.6, §8.1; Kruise §6.1",
        "core.errors",
    ),
    _c(
        "core.create",
        "The installed SDK's create route (POST /v2/sandboxes from e2b 2.51, POST /sandboxes "
        "before) answers 201 with templateID, sandboxID, clientID and a PEP 440 envdVersion "
        ">= 0.1.0 (compared as the SDK compares it); the SDK's Sandbox.create succeeds.",
        "E2B §2.2, §2.4, §2.6, §8.2",
    ),
    _c(
        "core.create.other-routes",
        "The create and connect routes of the other SDK generation (POST /sandboxes and POST "
        "/sandboxes/{id}/connect of e2b 2.20-2.50 when the installed SDK uses the /v2/ ones, "
        "and the other way round) answer 201 with the Sandbox fields, and 200 for a running "
        "sandbox. No other check depends on it.",
        "E2B §2.6; Kruise §6.2",
        "core.create",
    ),
    _c(
        "core.create.unknown-template",
        "Creating from a template that does not exist answers 400 or 404 with a JSON error; "
        "the SDK raises SandboxException.",
        "E2B §2.1; Kruise §6.4",
        "core.errors",
    ),
    _c(
        "core.get",
        "GET /sandboxes/{id} answers 200 with the SandboxDetail fields, state running and the "
        "create metadata (values with spaces, & and = intact); the SDK's get_info agrees.",
        "E2B §2.2, §2.4, §8.4",
        "core.create",
    ),
    _c(
        "core.auth.refused",
        "Get, kill, timeout, pause and connect of a running sandbox without X-API-Key, or with "
        "an unknown key, answer 401 (also under /kruise/api when served, and the other SDK "
        "generation's connect, or 404 or 405 if not served) and change nothing: the sandbox is "
        "still running, with the same endAt.",
        "E2B §2.1, §2.6, §8.1; Kruise §6.1",
        "core.auth",
        "core.get",
    ),
    _c(
        "core.create.default-timeout",
        "A create without a timeout lives 300 s: endAt - startedAt = 300 s (skipped under SDKs "
        "that create with POST /sandboxes: they always send a timeout).",
        "E2B §2.3, §8.2; Kruise §6.3",
        "core.get",
    ),
    _c(
        "core.list",
        "GET /v2/sandboxes answers 200 with a JSON array of ListedSandbox items (every required "
        "field); the run's own sandboxes (metadata filter) include a new sandbox, listed with "
        "its metadata (the run's key and the create metadata, values with spaces, & and = "
        "intact); the SDK's Sandbox.list agrees, with that metadata in its SandboxInfo.",
        "E2B §2.2, §2.4, §8.3; Kruise §6.3",
        "core.create",
    ),
    _c(
        "core.list.metadata",
        "The metadata filter, encoded as the SDK encodes it, lists exactly the sandboxes whose "
        "metadata match every pair, each value exactly: not one whose value only begins or ends "
        "with the one queried.",
        "E2B §2.3, §8.3; Kruise §6.7",
        "core.list",
    ),
    _c(
        "core.list.state",
        "Among the run's own sandboxes (metadata filter), state=running lists a running sandbox "
        "and state=paused does not.",
        "E2B §2.3, §8.3",
        "core.list",
    ),
    _c(
        "core.list.order",
        "Among the run's own sandboxes (metadata filter), three created a second apart, "
        "order=asc lists sandboxes by startedAt ascending and order=desc by startedAt "
        "descending (newest first); sandboxes started at the same instant may come in any order.",
        "E2B §2.3, §8.3; Kruise §6.7",
        "core.list",
    ),
    _c(
        "core.list.order.default",
        "Among the run's own sandboxes (metadata filter), two created a second apart, a list "
        "without order lists newest first (startedAt descending); a server with the OpenKruise "
        "extensions may list oldest first instead, as the sandbox-manager sorts by claim time.",
        "E2B §2.3; Kruise §6.7",
        "core.list",
    ),
    _c(
        "core.list.started-after",
        "Among the run's own sandboxes (metadata filter), startedAfter=<the startedAt of one> "
        "lists that sandbox (inclusive) and not one started a second before.",
        "E2B §2.3",
        "core.list",
    ),
    _c(
        "core.list.template",
        "Among the run's own sandboxes (metadata filter), template=<the template> lists a new "
        "sandbox of it, and a template that does not exist lists none of them (or answers 400 "
        "or 404 with a JSON error).",
        "E2B §2.3",
        "core.list",
    ),
    _c(
        "core.list.pagination",
        "Paging the run's own sandboxes (metadata filter) with limit=N, no page holds more than "
        "N (a page before the last may hold fewer), every item of every page matches the filter "
        "(the run's metadata), every page but the last carries X-Next-Token, the last has none, "
        "and following nextToken visits each sandbox once; the SDK paginator agrees.",
        "E2B §2.3, §8.3; Kruise §6.7",
        "core.list",
    ),
    _c(
        "core.kill",
        "DELETE /sandboxes/{id} answers 204; afterwards GET and a second DELETE answer 404 "
        "and the list of the run's sandboxes (no state filter) omits it; the SDK's kill of a "
        "running sandbox returns True.",
        "E2B §2.2, §2.4, §2.5, §8.5; Kruise §6.2",
        "core.get",
        "core.list",
    ),
    _c(
        "core.timeout",
        "POST /sandboxes/{id}/timeout answers 204 and sets endAt to now + timeout (shorter or "
        "longer); an unknown sandbox answers 404.",
        "E2B §2.2, §2.5, §8.5; Kruise §6.5",
        "core.get",
        "core.errors",
    ),
    _c(
        "core.timeout.enforced",
        "Once its timeout passes a sandbox is gone: GET answers 404 and the list of the run's "
        "sandboxes omits it.",
        "E2B §2.5, §8.5; Kruise §6.5",
        "core.timeout",
    ),
    # -- lifecycle: pause, connect, auto-pause, the sandbox proxy ---------------------------
    _c(
        "lifecycle.connect.running",
        "Connecting to a running sandbox (on the installed SDK's connect route) answers 200 "
        "with the Sandbox fields.",
        "E2B §2.2, §2.5, §8.5; Kruise §6.5",
        "core.create",
    ),
    _c(
        "lifecycle.connect.never-shortens",
        "Connect with a timeout shorter than what remains leaves endAt unchanged; a longer one "
        "extends it.",
        "E2B §2.3, §2.5; Kruise §6.5",
        "lifecycle.connect.running",
        "core.get",
    ),
    _c(
        "lifecycle.pause",
        "POST /sandboxes/{id}/pause answers 204; GET then answers 200 with the SandboxDetail "
        "fields and state paused, the SDK's get_info agrees, and the list of the run's "
        "sandboxes shows it with state=paused, and not with state=running.",
        "E2B §2.2, §2.4, §2.5, §8.4, §8.5; Kruise §6.5",
        "core.get",
        "core.list.state",
    ),
    _c(
        "lifecycle.list.states",
        "Among the run's own sandboxes (metadata filter), state=running,paused (what the SDK "
        "sends for a list of states) and a list without state (both by default) list a running "
        "and a paused sandbox, each in its state; so does the SDK's Sandbox.list without a "
        "state.",
        "E2B §2.3, §8.3; Kruise §6.7",
        "lifecycle.pause",
    ),
    _c(
        "lifecycle.pause.conflict",
        "Pausing an already paused sandbox answers 409 with a JSON error (the SDK's pause() "
        "returns False); a server with the OpenKruise extensions may answer 204 instead, as the "
        "sandbox-manager finds a paused sandbox pausable, if the sandbox stays paused.",
        "E2B §2.2, §2.5, §8.5; Kruise §6.5",
        "lifecycle.pause",
        "core.errors",
    ),
    _c(
        "lifecycle.connect.resume",
        "Connecting to a paused sandbox with a timeout answers 201; the sandbox is running "
        "again, serves traffic and lives at least that timeout from the resume (endAt).",
        "E2B §2.2, §2.5, §8.5; Kruise §6.5",
        "lifecycle.pause",
    ),
    _c(
        "lifecycle.auto-pause",
        "A sandbox created with autoPause (lifecycle on_timeout=pause) runs until its timeout "
        "(running right after create and halfway), then is paused, not killed; connect "
        "resumes it.",
        "E2B §2.3, §3.2; Kruise §6.5",
        "lifecycle.connect.resume",
    ),
    _c(
        "lifecycle.proxy.not-found",
        "Sandbox traffic for a paused or killed sandbox answers 502 whose message (the JSON "
        "body's message, else the body's text, as the SDK reads it) contains 'was not found'.",
        "E2B §4.6, §8.7; Kruise §6.8",
        "lifecycle.pause",
        "core.kill",
    ),
    _c(
        "lifecycle.is-running",
        "The SDK's is_running() is True for a running sandbox and False once it is paused or "
        "killed.",
        "E2B §3.9, §4.6",
        "lifecycle.pause",
        "core.kill",
    ),
    _c(
        "lifecycle.kill-paused",
        "Killing a paused sandbox answers 204 and it is gone: GET answers 404 and the list of "
        "the run's sandboxes omits it.",
        "E2B §2.5",
        "lifecycle.pause",
        "core.kill",
    ),
    _c(
        "lifecycle.concurrent",
        "Concurrent pause and connect calls on one sandbox end in a consistent state: the state "
        "GET shows matches whether its traffic is served.",
        "Kruise §5.6, §6.5",
        "lifecycle.connect.resume",
    ),
    # -- envd: commands and files through the sandbox proxy ---------------------------------
    _c(
        "envd.health",
        "GET /health of envd (port 49983) answers 2xx at the URL the SDK uses: the sandbox "
        "URL, else https://sandbox.<domain> or https://49983-<sandboxID>.<domain> for the "
        "sandbox's domain (its create answer's, else --domain, else the SDK's e2b.app).",
        "E2B §4.3, §8.7, §8.8",
        "core.create",
    ),
    _c(
        "envd.routing.host",
        "Sandbox traffic is also routed by Host: 49983-<sandboxID>.<domain>.",
        "E2B §1.6, §8.7; Kruise §6.8",
        "envd.health",
    ),
    _c(
        "envd.auth.token",
        "envd requests without X-Access-Token, or with a wrong one, are refused with 401 (a "
        "Connect stream may instead end at once with error unauthenticated) and do nothing: "
        "process Start, filesystem Stat, ListDir and MakeDir, file download and upload; with "
        "the sandbox's envdAccessToken (from its create answer, else GET) they succeed.",
        "E2B §4.5, §8.8",
        "envd.health",
    ),
    _c(
        "envd.commands.output",
        "commands.run returns the command's stdout and stderr.",
        "E2B §4.2, §4.7",
        "envd.health",
    ),
    _c(
        "envd.commands.exit-code",
        "A command exiting non-zero raises CommandExitException with its exit code and output.",
        "E2B §4.2",
        "envd.commands.output",
    ),
    _c(
        "envd.commands.env",
        "Commands see the sandbox's create envVars and the call's envs.",
        "E2B §4.2; Kruise §6.3",
        "envd.commands.output",
    ),
    _c(
        "envd.commands.background",
        "A background command is listed by commands.list, with the cmd and args it was "
        "started with (/bin/bash, [-l, -c, <command>]), and its wait() returns its output.",
        "E2B §4.2",
        "envd.commands.output",
    ),
    _c(
        "envd.commands.signal",
        "Killing a background command (SendSignal) ends it: kill returns True and it leaves "
        "the list.",
        "E2B §4.2",
        "envd.commands.background",
    ),
    _c(
        "envd.commands.timeout",
        "A command outliving its timeout raises TimeoutException promptly, and envd ends "
        "the process (Connect-Timeout-Ms): its pid, which it wrote to a file, leaves "
        "commands.list.",
        "E2B §1.5, §4.2",
        "envd.commands.output",
    ),
    _c(
        "envd.commands.cwd",
        "A command runs in the cwd it is given (an absolute path in the sandbox).",
        "E2B §4.2",
        "envd.commands.output",
    ),
    _c(
        "envd.commands.stdin",
        "A command started with stdin=True reads what send_stdin sends it (SendInput).",
        "E2B §4.2",
        "envd.commands.background",
    ),
    _c(
        "envd.commands.connect",
        "commands.connect(pid) attaches to a running background command (Process/Connect): "
        "its wait() returns the output that follows.",
        "E2B §4.2",
        "envd.commands.background",
    ),
    _c(
        "envd.files.write-read",
        "files.write then files.read returns the same text and bytes, also for a 1 MiB file "
        "of non-repeating bytes (many upload and download chunks).",
        "E2B §4.3, §4.7",
        "envd.health",
    ),
    _c(
        "envd.files.stat",
        "files.exists and files.get_info describe a file (name, type, size) and a missing path "
        "is reported missing.",
        "E2B §4.2",
        "envd.files.write-read",
    ),
    _c(
        "envd.files.list",
        "files.list returns the entries of a directory with their types.",
        "E2B §4.2",
        "envd.files.write-read",
    ),
    _c(
        "envd.files.make-dir",
        "files.make_dir creates a directory (True) and returns False when it exists.",
        "E2B §4.2",
        "envd.files.stat",
    ),
    _c(
        "envd.files.rename",
        "files.rename moves a file: the new path exists with the content, the old one not.",
        "E2B §4.2",
        "envd.files.stat",
    ),
    _c(
        "envd.files.remove",
        "files.remove deletes a file; reading it then raises a not-found error.",
        "E2B §4.2, §4.3",
        "envd.files.stat",
    ),
    _c(
        "envd.files.write-many",
        "files.write_files of two files (one multipart upload without a path, each file named "
        "by its part) writes both, creating the directories they need.",
        "E2B §4.3",
        "envd.files.write-read",
    ),
    _c(
        "envd.user",
        "Calls naming a user (user='root': Authorization: Basic base64('root:') on an RPC, "
        "username=root on /files) are served: commands.run as root gives its output, and a "
        "file written as root reads back as root.",
        "E2B §4.5, §8.8",
        "envd.commands.output",
        "envd.files.write-read",
    ),
    _c(
        "lifecycle.pause.keeps-files",
        "Files written before a pause are there after connect resumes the sandbox.",
        "Kruise §6.5",
        "lifecycle.connect.resume",
        "envd.files.write-read",
    ),
    _c(
        "lifecycle.connect.token",
        "The envdAccessToken of a connect answer (200 for a running sandbox, 201 resuming a "
        "paused one) is the one envd takes: a file download carrying it, or no token when the "
        "answer has none, as the SDK's Sandbox.connect sends, succeeds.",
        "E2B §2.4, §3.7, §4.5; Kruise §6.3",
        "lifecycle.connect.resume",
        "envd.files.write-read",
    ),
    # -- code: the code interpreter (port 49999) --------------------------------------------
    _c(
        "code.run",
        "run_code('1+1') gives the text '2', and printed output arrives in the stdout logs.",
        "E2B §5",
        "core.create",
    ),
    _c(
        "code.logs",
        "What a run prints to stdout arrives in the stdout logs only, and what it prints to "
        "stderr in the stderr logs only.",
        "E2B §5",
        "code.run",
    ),
    _c(
        "code.display",
        "Displayed data arrive as results besides the main one, in their formats: "
        "display(HTML(...)) gives a result with html, a raw image/png display one with png.",
        "E2B §5",
        "code.run",
    ),
    _c(
        "code.execution-count",
        "Each run's execution carries an integer execution_count that grows from one run to "
        "the next.",
        "E2B §5",
        "code.run",
    ),
    _c(
        "code.state",
        "A variable defined by one run_code call is visible to the next.",
        "E2B §5",
        "code.run",
    ),
    _c(
        "code.error",
        "An exception gives execution.error with its name, value and traceback.",
        "E2B §5",
        "code.run",
    ),
    _c(
        "code.contexts",
        "create_code_context gives an isolated context that is listed and keeps its own state; "
        "restart clears it and remove drops it.",
        "E2B §5",
        "code.state",
    ),
    # -- kruise: the OpenKruise Agents extensions -------------------------------------------
    _c(
        "kruise.api-prefix",
        "Every E2B route is also served under /kruise/api: create, get, list, timeout, pause, "
        "connect (resuming the paused sandbox: 201) and kill.",
        "Kruise §6.1, §6.8",
        "core.get",
        "core.kill",
        "core.timeout",
        "lifecycle.connect.resume",
    ),
    _c(
        "kruise.sandbox-resource",
        "Create and get responses carry metadata e2b.agents.kruise.io/sandbox-resource = "
        "<namespace>/<name>.",
        "Kruise §5.5, §6.3",
        "core.get",
    ),
    _c(
        "kruise.label",
        "Metadata label:<key>=<value> shows as <key>=<value> in the sandbox's metadata; an "
        "invalid label key answers 400.",
        "Kruise §5.5, §6.6",
        "core.get",
        "core.errors",
    ),
    _c(
        "kruise.reserved-prefix",
        "Create metadata keys under agents.kruise.io/, and unknown e2b.agents.kruise.io/ keys, "
        "answer 400.",
        "Kruise §5.5, §6.6",
        "core.create",
        "core.errors",
    ),
    _c(
        "kruise.claim-timeout",
        "e2b.agents.kruise.io/claim-timeout-seconds=<int> is accepted (201); a non-integer "
        "value answers 400.",
        "Kruise §5.5",
        "core.create",
        "core.errors",
    ),
    _c(
        "kruise.skip-init-runtime",
        "e2b.agents.kruise.io/skip-init-runtime=true creates a sandbox without envdAccessToken.",
        "Kruise §5.5",
        "core.create",
    ),
    _c(
        "kruise.reserve-failed",
        "reserve-failed-sandbox=true and reserve-failed-sandbox-for=<duration> are accepted "
        "(201); an invalid duration answers 400.",
        "Kruise §5.5",
        "core.create",
        "core.errors",
    ),
    _c(
        "kruise.never-timeout",
        "A sandbox created with e2b.agents.kruise.io/never-timeout=true outlives a timeout that "
        "would have ended it.",
        "Kruise §5.5, §6.5",
        "core.timeout.enforced",
    ),
    _c(
        "kruise.no-stock",
        "From a template with no ready sandbox, create-on-no-stock=false fails with a JSON "
        "error and the default creates one.",
        "Kruise §5.5, §5.3",
        "core.create",
        "core.errors",
    ),
)
"""Every check, in dependency order."""

_BY_ID: Final[dict[str, Check]] = {c.id: c for c in CHECKS}


def _validate() -> None:
    seen: set[str] = set()
    for c in CHECKS:
        if c.id in seen:
            raise ValueError(f"check {c.id!r} is listed twice")
        for dep in c.depends:
            if dep not in seen:
                raise ValueError(f"check {c.id!r} depends on {dep!r}, which is not listed before")
        seen.add(c.id)


_validate()


def by_id(check_id: str) -> Check:
    """The check named ``check_id`` (``KeyError`` naming it if there is none)."""
    try:
        return _BY_ID[check_id]
    except KeyError:
        raise KeyError(f"unknown conformance check {check_id!r}") from None


def dependents(check_id: str) -> set[str]:
    """Ids of the checks that depend on ``check_id``, directly or through others."""
    found: set[str] = set()
    for c in CHECKS:  # dependency order: a dependent's dependencies come first
        if check_id in c.depends or found.intersection(c.depends):
            found.add(c.id)
    return found


def parse_levels(text: str | Iterable[str] | None) -> tuple[Level, ...]:
    """The levels named in ``"core,envd"`` (or a sequence); all levels for ``None``.

    Raises ``ValueError`` naming an unknown level, or for a value naming no
    level (``""``, ``","``, ``" "``).
    """
    if text is None:
        return LEVELS
    names = text.split(",") if isinstance(text, str) else list(text)
    wanted = {n.strip() for n in names if n.strip()}
    if not wanted:
        # A script's `--levels "$A,$B"` with both unset: not every level in silence.
        raise ValueError("levels: must not be empty")
    unknown = sorted(wanted.difference(LEVELS))
    if unknown:
        raise ValueError(f"levels: unknown level {unknown[0]!r}; choose from {', '.join(LEVELS)}")
    return tuple(level for level in LEVELS if level in wanted)


def select(levels: Sequence[str]) -> list[Check]:
    """The checks of ``levels``, in dependency order."""
    return [c for c in CHECKS if c.level in levels]
