"""The E2B conformance suite: checks any E2B-compatible server the way the SDKs use it.

Run it with ``kruise-agents conformance --api-url URL --api-key KEY --template T``
or ``pytest --pyargs pytest_kruise_agents.conformance --kruise-conformance-api-url URL ...``.
The checks (one pytest test each, in ``test_<level>.py``) talk to the server
only as a client would: the public ``e2b`` / ``e2b-code-interpreter`` SDKs,
plus raw HTTP where the wire itself is the subject. The catalogue of checks
is :data:`~pytest_kruise_agents.conformance.registry.CHECKS`.

This package stays import-light: the pytest plugin is loaded in every pytest run.
"""

__all__: list[str] = []
