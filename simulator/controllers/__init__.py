"""The agent-sandbox-controller: SandboxSet, Sandbox and SandboxClaim controllers."""
