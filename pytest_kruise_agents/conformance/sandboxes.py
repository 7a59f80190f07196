"""The sandboxes a check creates: made through the SDK or raw HTTP, always killed afterwards.

Every sandbox carries the run's metadata (``conformance-run=<run id>``), so a
run can find what it left behind; :meth:`Sandboxes.cleanup` kills them all
(:func:`kill_all`: at once, each DELETE waiting a bounded time) and ignores the
answers (a sandbox may already be gone: that is often the point), but not their
absence: a DELETE the server leaves unanswered fails the cleanup, naming the
sandboxes that may be left on the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from e2b import Sandbox

from pytest_kruise_agents.conformance.expect import (
    CheckFailed,
    expect_status,
    fail,
    json_body,
    step,
)
from pytest_kruise_agents.conformance.target import RUN_KEY, Api, Target

__all__ = [
    "AFTER_UNANSWERED_FRACTION",
    "AFTER_UNANSWERED_MIN_S",
    "Sandboxes",
    "cleanup_wait",
    "kill_all",
]

AFTER_UNANSWERED_FRACTION: Final = 1 / 6
"""The share of the cleanup timeout each DELETE of a cleanup waits once the server has left one
unanswered for the whole timeout (10 s of the default 60 s): it is not answering them, and every
check's cleanup waiting the full bound would add up to an hour."""

AFTER_UNANSWERED_MIN_S: Final = 1.0
"""The least a DELETE waits, however short the cleanup timeout."""

_KILLERS: Final = 8


def cleanup_wait(api: Api) -> float:
    """Seconds each cleanup DELETE waits: the target's cleanup timeout, or a sixth of it (at
    least :data:`AFTER_UNANSWERED_MIN_S`) once the server has left a DELETE unanswered."""
    bound = api.target.cleanup_timeout
    if not api.unanswered:
        return bound
    return min(bound, max(AFTER_UNANSWERED_MIN_S, bound * AFTER_UNANSWERED_FRACTION))


def _count(ids: Sequence[str]) -> str:
    return f"{len(ids)} sandbox" + ("es" if len(ids) != 1 else "")


def kill_all(api: Api, ids: Sequence[str]) -> list[str]:
    """``DELETE`` each of ``ids`` at once, each waiting :func:`cleanup_wait` seconds; the ids
    whose DELETE got no answer (also added to :attr:`Api.unanswered`). Any answer counts:
    404 (gone already) as much as 204."""
    wait = cleanup_wait(api)

    def answered(sid: str) -> bool:
        try:
            api.kill(sid, timeout=wait)
        except CheckFailed:  # no answer: a timeout, a refused or broken connection
            return False
        return True

    if not ids:
        return []
    with ThreadPoolExecutor(max_workers=min(len(ids), _KILLERS)) as pool:
        missed = [sid for sid, ok in zip(ids, pool.map(answered, ids), strict=True) if not ok]
    api.unanswered += [sid for sid in missed if sid not in api.unanswered]
    return missed


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
        """Kill every tracked sandbox (:func:`kill_all`); fail naming those whose DELETE got no
        answer, which may be left on the server."""
        ids, self.ids = list(self.ids), []
        wait = cleanup_wait(self.api)
        missed = kill_all(self.api, ids)
        if missed:
            more = f" and {len(missed) - 1} more" if len(missed) > 1 else ""
            fail(
                f"DELETE /sandboxes/{missed[0]}{more}",
                f"an answer within {wait:g} s",
                f"none; {_count(missed)} may be left on the server: {', '.join(missed)}",
            )
