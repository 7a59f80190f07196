"""The agent-sandbox-controller: SandboxSet, Sandbox and SandboxClaim controllers."""

from simulator.controllers.sandbox import SandboxController
from simulator.controllers.sandboxclaim import SandboxClaimController
from simulator.controllers.sandboxset import SandboxSetController

__all__ = ["SandboxClaimController", "SandboxController", "SandboxSetController"]
