"""A small agent application: it runs an agent's shell steps in an E2B sandbox.

This is the *code under test* of the example suite: it knows nothing about
pytest-kruise-agents and calls the unmodified E2B SDK, configured by the
environment (``E2B_API_KEY``, ``E2B_API_URL``, ``E2B_SANDBOX_URL``) the way
it would be in production against OpenKruise Agents' sandbox-manager.

What it does on top of the SDK is what its tests check:

- it asks the sandbox-manager for a bounded claim (``claim-timeout-seconds``)
  and, optionally, for warm sandboxes only (``create-on-no-stock: false``);
- it turns every way of not getting a sandbox into one :class:`SandboxUnavailable`;
- when its sandbox has been killed (it reached its timeout), it starts a new
  one, replays the session's setup steps, and counts the restart.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from e2b import CommandExitException, Sandbox, SandboxException, SandboxNotRunningException

__all__ = ["Agent", "AgentConfig", "SandboxUnavailable", "StepResult"]

CLAIM_TIMEOUT = "e2b.agents.kruise.io/claim-timeout-seconds"
CREATE_ON_NO_STOCK = "e2b.agents.kruise.io/create-on-no-stock"


class SandboxUnavailable(RuntimeError):
    """No sandbox could be had: the pool was empty, the claim timed out, or it failed to start."""


@dataclass(frozen=True)
class AgentConfig:
    """How the agent asks for sandboxes."""

    template: str = "base"
    sandbox_timeout: int = 300
    """Seconds the sandbox lives without activity (E2B ``timeout``)."""
    claim_timeout: int = 30
    """Seconds the sandbox-manager may take to deliver one."""
    warm_only: bool = False
    """Take only warm sandboxes from the pool; never wait for a new one to be created."""


@dataclass(frozen=True)
class StepResult:
    """The outcome of one shell step."""

    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Whether the step exited with 0."""
        return self.exit_code == 0


@dataclass
class Agent:
    """One agent session: a sandbox, setup steps replayed after a restart, a transcript."""

    config: AgentConfig = field(default_factory=AgentConfig)
    setup: list[str] = field(default_factory=list)
    """Steps that prepare the sandbox (run on start, and again after a restart)."""
    sandbox: Sandbox | None = None
    restarts: int = 0
    transcript: list[StepResult] = field(default_factory=list)

    def start(self) -> str:
        """Get a sandbox and run the setup steps; return the sandbox id."""
        cfg = self.config
        metadata = {
            "app": "example-agent",
            CLAIM_TIMEOUT: str(cfg.claim_timeout),
            CREATE_ON_NO_STOCK: "false" if cfg.warm_only else "true",
        }
        try:
            self.sandbox = Sandbox.create(
                cfg.template, timeout=cfg.sandbox_timeout, metadata=metadata
            )
        except SandboxException as exc:
            raise SandboxUnavailable(f"no sandbox from template {cfg.template!r}: {exc}") from exc
        for step in self.setup:
            self._exec(step)
        return self.sandbox.sandbox_id

    def run(self, command: str) -> StepResult:
        """Run one step; restart the sandbox once if it is gone."""
        if self.sandbox is None:
            self.start()
        try:
            result = self._exec(command)
        except SandboxNotRunningException:
            self.restarts += 1
            self.start()
            result = self._exec(command)
        self.transcript.append(result)
        return result

    def _exec(self, command: str) -> StepResult:
        assert self.sandbox is not None
        try:
            out = self.sandbox.commands.run(command)
        except CommandExitException as exc:
            return StepResult(command, exc.exit_code, exc.stdout, exc.stderr)
        return StepResult(command, out.exit_code, out.stdout, out.stderr)

    def close(self) -> None:
        """Kill the sandbox (if it is still there)."""
        if self.sandbox is not None:
            with contextlib.suppress(SandboxException):  # already gone
                self.sandbox.kill()
            self.sandbox = None
