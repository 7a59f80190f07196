"""The sandboxes a check creates: made through the SDK or raw HTTP, always killed afterwards.

Every sandbox carries the run's metadata (``conformance-run=<run id>``), so a
run can find what it left behind; :meth:`Sandboxes.cleanup` kills them all
and ignores errors (a sandbox may already be gone: that is often the point).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from e2b import Sandbox

from pytest_kruise_agents.conformance.expect import expect_status, fail, json_body, step
from pytest_kruise_agents.conformance.target import RUN_KEY, Api, Target

__all__ = ["Sandboxes"]


class Sandboxes:
    """Creates sandboxes for one check (or one module) and kills them at the end."""

    def __init__(self, target: Target, api: Api) -> None:
        self.target = target
        self.api = api
        self.ids: list[str] = []

    def metadata(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The run's metadata plus ``extra``."""
        return {RUN_KEY: self.target.run_id, **(extra or {})}

    def create(
        self,
        template: str | None = None,
        *,
        sandbox_class: Any = Sandbox,
        metadata: Mapping[str, str] | None = None,
        what: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """``sandbox_class.create(...)`` with the target's connection options; tracked."""
        tpl = template or self.target.template
        with step(what or f"create a sandbox from template {tpl!r} with the SDK"):
            sbx = sandbox_class.create(
                template=tpl,
                metadata=self.metadata(metadata),
                **kwargs,
                **self.target.sdk_opts(),
            )
        self.track(sbx.sandbox_id)
        # The SDK took the create answer's domain (else its own, which the Api falls back
        # to as well): reach the sandbox where the SDK does.
        domain = getattr(sbx, "sandbox_domain", None)
        if domain != self.api.sandbox_domain(sbx.sandbox_id)[0]:
            self.api.remember_domain(sbx.sandbox_id, domain)
        return sbx

    def create_raw(
        self, template: str | None = None, *, what: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Create with raw HTTP (:meth:`Api.create`); fail unless 201 with a ``sandboxID``."""
        tpl = template or self.target.template
        label = what or f"POST {kwargs.get('route') or self.api.create_route} from template {tpl!r}"
        resp = self.api.create(tpl, **kwargs)
        body = json_body(resp, label) if resp.status_code == 201 else None
        if isinstance(body, dict) and isinstance(body.get("sandboxID"), str):
            self.track(body["sandboxID"])
        expect_status(resp, 201, label)
        if not isinstance(body, dict) or not isinstance(body.get("sandboxID"), str):
            fail(label, "a Sandbox object with a string sandboxID", repr(body)[:300])
        return body

    def track(self, sandbox_id: str) -> None:
        """Kill ``sandbox_id`` at cleanup (and at the run's final sweep, should that fail)."""
        self.api.made.add(sandbox_id)
        if sandbox_id not in self.ids:
            self.ids.append(sandbox_id)

    def cleanup(self) -> None:
        """Kill every tracked sandbox, ignoring errors."""
        for sid in self.ids:
            with contextlib.suppress(Exception):
                self.api.kill(sid)
        self.ids.clear()
