"""Profiles: upstream defaults, the two built-in versions, overrides and their validation."""

from __future__ import annotations

import copy
import pickle
import sys
from collections.abc import Callable
from typing import Any

import pytest

from pytest_kruise_agents.api.errors import InvalidError
from simulator.latency import Fixed, LogNormal, Uniform
from simulator.profile import (
    DEFAULT_LATENCIES,
    DEFAULT_PROFILE,
    LATENCY_DOCS,
    PROFILES,
    Profile,
    get_profile,
)


def override(profile: Profile, knob: str, value: object) -> Profile:
    """``profile.with_overrides(<knob>=value)``: a knob named at run time, with any value."""
    knobs: dict[str, Any] = {knob: value}
    return profile.with_overrides(**knobs)


def test_the_default_profile_is_openkruise_head() -> None:
    """``openkruise-head`` is the default and both versions are built in."""
    assert DEFAULT_PROFILE == "openkruise-head"
    assert list(PROFILES) == ["openkruise-head", "openkruise-v0.3.0"]


def test_head_carries_upstream_defaults() -> None:
    """HEAD's knobs are upstream's defaults (reference §7 and §9.1)."""
    head = get_profile("openkruise-head")
    assert (head.claim_workers, head.create_qps, head.create_burst) == (500, 49.0, 49)
    assert head.candidate_count == 100
    assert head.retry == "exponential"
    assert head.fixed_retry_attempts == 2400  # the model's budget, not upstream's (endless)
    assert head.e2b_default_claim_timeout_s is None
    assert head.e2b_default_wait_ready_timeout_s is None
    assert (head.init_attempts, head.init_attempt_timeout_s) == (5, 1.0)
    assert head.csi_mount_concurrency == 3
    assert (head.sandboxset_workers, head.sandbox_workers, head.sandboxclaim_workers) == (
        3,
        500,
        500,
    )
    assert head.sandboxset_initial_batch == 16
    assert (head.claim_batch_max, head.claim_batch_initial) == (50, 5)
    assert head.claim_retry_interval_s == 2.0
    assert head.expectation_timeout_s == 60.0
    assert head.claim_namespace_scoped is True
    assert (head.manager_qps, head.manager_burst) == (500.0, 1000)
    assert (head.controller_qps, head.controller_burst) == (3000.0, 6000)
    assert (head.kubelet_qps, head.kubelet_burst) == (50.0, 100)
    assert head.percentage_of_nodes_to_score == 0  # kube-scheduler's adaptive default
    assert (head.default_timeout_s, head.min_resume_timeout_s) == (300.0, 300.0)
    assert (head.pause_pod_grace_s, head.pod_delete_grace_s) == (5.0, 0.0)
    # --recycle-grace-period and --recycle-timeout (reference §4, recycle).
    assert (head.recycle_grace_s, head.recycle_timeout_s) == (10.0, 60.0)
    assert (head.recycle_on_kill, head.inplace_resource_resize) == (True, True)
    assert head.claim_annotations_on_pod is True


def test_v0_3_0_differs_from_head_only_where_upstream_changed() -> None:
    """v0.3.0 retries at a fixed interval, bounds E2B timeouts at 60 s, claims across namespaces,
    recycles nothing on kill and keeps claim annotations off the pod template."""
    head = get_profile("openkruise-head")
    old = get_profile("openkruise-v0.3.0")
    differing = {k for k in Profile.knob_names() if getattr(head, k) != getattr(old, k)}
    assert head.name != old.name and head.description != old.description
    assert differing == {
        "retry",
        "e2b_default_claim_timeout_s",
        "e2b_default_wait_ready_timeout_s",
        "claim_namespace_scoped",
        "recycle_on_kill",
        "claim_annotations_on_pod",
    }
    assert old.retry == "fixed"
    assert old.e2b_default_claim_timeout_s == 60.0
    assert old.e2b_default_wait_ready_timeout_s == 60.0
    assert old.claim_namespace_scoped is False
    assert (old.recycle_on_kill, old.claim_annotations_on_pod) == (False, False)
    assert old.latencies == head.latencies


def test_every_latency_is_documented_and_has_a_default() -> None:
    """LATENCY_DOCS and DEFAULT_LATENCIES name the same latencies, in the same order."""
    assert list(LATENCY_DOCS) == list(DEFAULT_LATENCIES)
    assert all(LATENCY_DOCS.values())
    assert list(get_profile("openkruise-head").latencies) == list(LATENCY_DOCS)


def test_default_latencies_match_the_documented_ranges() -> None:
    """A few defaults spelled out: API create, update, pod create, image pulls, manager pick."""
    assert DEFAULT_LATENCIES["api.create"] == Uniform(low=0.01, high=0.05)
    assert DEFAULT_LATENCIES["api.update"] == Uniform(low=0.01, high=0.1)
    assert DEFAULT_LATENCIES["pod.create"] == Uniform(low=0.1, high=0.5)
    assert DEFAULT_LATENCIES["image.pull"] == LogNormal(median=5.0, p99=30.0)
    assert DEFAULT_LATENCIES["image.pull_cached"] == Uniform(low=0.05, high=0.2)
    assert DEFAULT_LATENCIES["manager.pick"] == Fixed(value=0.0005)


def test_unknown_profile_names_list_the_available_ones() -> None:
    """get_profile of an unknown name is a ValueError listing the names."""
    with pytest.raises(ValueError) as info:
        get_profile("head")
    assert "'head'" in str(info.value)
    assert "openkruise-head, openkruise-v0.3.0" in str(info.value)


LATENCY_EDITS: list[Callable[[Any], object]] = [
    lambda t: t.__setitem__("api.create", Fixed(value=9.0)),
    lambda t: t.__delitem__("api.create"),
    lambda t: t.update({"api.create": Fixed(value=9.0)}),
    lambda t: t.pop("api.create"),
    lambda t: t.popitem(),
    lambda t: t.clear(),
    lambda t: t.setdefault("api.create", Fixed(value=9.0)),
    lambda t: t.__ior__({"api.create": Fixed(value=9.0)}),
]


@pytest.mark.parametrize(
    "profile",
    [
        PROFILES["openkruise-head"],
        get_profile("openkruise-v0.3.0"),
        get_profile(DEFAULT_PROFILE).with_overrides(latencies={"image.pull": "exp(3s)"}),
        Profile(name="quick", latencies={"image.pull": "fixed(1s)"}),
        Profile(name="all-defaults"),
        Profile.model_validate_json(PROFILES["openkruise-head"].model_dump_json()),
        pickle.loads(pickle.dumps(PROFILES["openkruise-head"])),
        copy.deepcopy(PROFILES["openkruise-head"]),
        PROFILES["openkruise-head"].model_copy(deep=True),
    ],
    ids=[
        "built-in",
        "get_profile",
        "with_overrides",
        "built",
        "default",
        "json",
        "pickle",
        "deepcopy",
        "model_copy",
    ],
)
def test_a_profile_s_latency_table_is_read_only(profile: Profile) -> None:
    """A profile's latencies cannot be edited in place, however the profile was made: each
    edit raises InvalidError naming ``latencies`` and the way to a changed copy. A profile is
    shared (by every cluster built from it, and every test of a plugin run), so an edit would
    reach every run that holds it; the built-in profiles stay as they are."""
    before = dict(profile.latencies)
    for edit in LATENCY_EDITS:
        with pytest.raises(InvalidError) as err:
            edit(profile.latencies)
        assert err.value.field == "latencies"
        assert "read-only" in err.value.reason and "with_overrides" in err.value.reason
    assert profile.latencies == before
    assert get_profile("openkruise-head").latencies["api.create"] == Uniform(low=0.01, high=0.05)
    # A copy is the caller's to edit, and the way back is with_overrides.
    mine = dict(profile.latencies)
    mine["api.create"] = Fixed(value=9.0)
    assert profile.with_overrides(latencies=mine).latency("api.create") == Fixed(value=9.0)


def test_with_overrides_changes_knobs_and_latencies_and_keeps_the_rest() -> None:
    """Overrides apply to a copy; latencies accept any parse_latency form."""
    head = get_profile("openkruise-head")
    custom = head.with_overrides(
        latencies={"api.create": "uniform(1s, 2s)", "watch.lag": 0.5},
        claim_workers=10,
        retry="fixed",
    )
    assert custom.claim_workers == 10
    assert custom.retry == "fixed"
    assert custom.latencies["api.create"] == Uniform(low=1.0, high=2.0)
    assert custom.latencies["watch.lag"] == Fixed(value=0.5)
    assert custom.latencies["api.update"] == head.latencies["api.update"]
    assert custom.create_qps == head.create_qps
    assert head.claim_workers == 500


def test_an_unknown_knob_is_named_with_a_suggestion() -> None:
    """A misspelt knob raises a ValueError naming it and the closest knob."""
    with pytest.raises(ValueError, match="unknown profile knob 'claim_wokers'") as info:
        get_profile(DEFAULT_PROFILE).with_overrides(claim_wokers=1)
    assert "did you mean 'claim_workers'" in str(info.value)


def test_an_unknown_latency_is_named_with_a_suggestion() -> None:
    """A misspelt latency name raises a ValueError naming it."""
    with pytest.raises(ValueError) as info:
        get_profile(DEFAULT_PROFILE).with_overrides(latencies={"api.craete": 1})
    assert "unknown latency 'api.craete'" in str(info.value)
    assert "did you mean 'api.create'" in str(info.value)


@pytest.mark.parametrize("name", [5, None, ("api", "create")])
def test_a_latency_name_that_is_no_string_is_named(name: object) -> None:
    """A latency is named by a string: anything else is a ValueError saying so."""
    with pytest.raises(ValueError) as info:
        # a name of the wrong type, refused at run time
        get_profile(DEFAULT_PROFILE).with_overrides(latencies={name: "1s"})  # type: ignore[dict-item]
    assert str(info.value) == f"latency names must be strings, got {name!r}"


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"claim_workers": 0}, "'claim_workers'"),
        ({"create_qps": "fast"}, "'create_qps'"),
        ({"retry": "linear"}, "'retry'"),
        ({"e2b_default_claim_timeout_s": -1}, "'e2b_default_claim_timeout_s'"),
        (
            {"fixed_retry_attempts": 0},
            "'fixed_retry_attempts': must be a whole number from 1 to 9223372036854775807, got 0",
        ),
        ({"percentage_of_nodes_to_score": 101}, "'percentage_of_nodes_to_score'"),
        ({"latencies": {"api.create": "bogus"}}, "latency 'api.create'"),
    ],
)
def test_an_invalid_override_value_names_the_knob(knobs: dict[str, object], message: str) -> None:
    """A bad value raises a ValueError naming the knob or latency it was given for."""
    with pytest.raises(ValueError) as info:
        get_profile(DEFAULT_PROFILE).with_overrides(**knobs)  # type: ignore[arg-type]
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("claim_workers", True, "must be a valid integer, got True"),
        ("claim_workers", 3.0, "must be a valid integer, got 3.0"),
        ("fixed_retry_attempts", True, "must be a valid integer, got True"),
        ("fixed_retry_attempts", 2400.0, "must be a valid integer, got 2400.0"),
        ("create_qps", "5", "must be a valid number, got '5'"),
        ("claim_namespace_scoped", 1, "must be a valid boolean, got 1"),
    ],
)
def test_a_knob_keeps_the_kind_it_was_given(knob: str, value: object, message: str) -> None:
    """No silent conversion: ``true`` is not one worker, ``"5"`` not a rate, ``1`` not a switch
    (a config file's typo would otherwise run a different cluster)."""
    with pytest.raises(ValueError) as info:
        override(get_profile(DEFAULT_PROFILE), knob, value)
    assert str(info.value) == f"invalid value for profile knob {knob!r}: {message}"
    # A whole number is a number: a rate of 5 is 5.0.
    assert get_profile(DEFAULT_PROFILE).with_overrides(create_qps=5).create_qps == 5.0


@pytest.mark.parametrize(
    ("knob", "value", "allowed"),
    [
        ("default_timeout_s", 10.0, "from 30 to 2592000 (30 days)"),
        ("default_timeout_s", 29, "from 30 to 2592000 (30 days)"),
        ("default_timeout_s", 2_592_001, "from 30 to 2592000 (30 days)"),
        ("default_timeout_s", 299.7, "from 30 to 2592000 (30 days)"),
        ("default_timeout_s", float("inf"), "from 30 to 2592000 (30 days)"),
        ("min_resume_timeout_s", -1, "from 0 to 2592000 (30 days)"),
        ("min_resume_timeout_s", 2_592_001.0, "from 0 to 2592000 (30 days)"),
        ("min_resume_timeout_s", 0.5, "from 0 to 2592000 (30 days)"),
    ],
)
def test_e2b_timeout_knobs_are_whole_seconds_an_e2b_timeout_may_be(
    knob: str, value: float, allowed: str
) -> None:
    """The default timeout of a create, connect or resume, and the resume floor, are whole
    seconds (upstream's timeouts are): a default no create could take (outside 30 s to 30
    days) would make every create without a timeout a 400 blaming ``timeout``, and a fraction
    would be dropped. Refused at the profile, naming the knob and the allowed values."""
    with pytest.raises(ValueError) as info:
        override(get_profile(DEFAULT_PROFILE), knob, value)
    assert str(info.value) == (
        f"invalid value for profile knob {knob!r}: must be a whole number of seconds "
        f"{allowed}, got {value!r}"
    )


def test_e2b_timeout_knobs_take_their_bounds() -> None:
    """The bounds themselves are allowed, as ints or as whole floats."""
    head = get_profile(DEFAULT_PROFILE)
    for knob, value in [
        ("default_timeout_s", 30),
        ("default_timeout_s", 2_592_000.0),
        ("min_resume_timeout_s", 0),
        ("min_resume_timeout_s", 2_592_000),
    ]:
        assert getattr(override(head, knob, value), knob) == value


INF = float("inf")
NAN = float("nan")
WHOLE = "must be a whole number from"
OVER_0 = "must be a number of seconds over 0, at most 3153600000 (100 years)"
FROM_0 = "must be a number of seconds from 0 to 3153600000 (100 years)"


@pytest.mark.parametrize(
    ("knob", "value", "allowed"),
    [
        # Counts: whole numbers up to what a Go int (upstream's flags and constants) holds.
        ("claim_workers", 0, f"{WHOLE} 1 to 9223372036854775807"),
        ("claim_workers", 2**63, f"{WHOLE} 1 to 9223372036854775807"),
        ("create_burst", 10**400, f"{WHOLE} 1 to 9223372036854775807"),
        ("init_attempts", -1, f"{WHOLE} 1 to 9223372036854775807"),
        ("sandbox_workers", 2**63, f"{WHOLE} 1 to 9223372036854775807"),
        ("kubelet_burst", 0, f"{WHOLE} 1 to 9223372036854775807"),
        ("percentage_of_nodes_to_score", 101, f"{WHOLE} 0 to 100"),
        # A pick's window is read with islice: no more than sys.maxsize.
        ("candidate_count", 10**30, f"{WHOLE} 1 to {sys.maxsize}"),
        ("candidate_count", 0, f"{WHOLE} 1 to {sys.maxsize}"),
        # Rates: over 0, or infinite.
        ("create_qps", 0.0, "must be a rate over 0 per second, or inf (no limit)"),
        ("manager_qps", NAN, "must be a rate over 0 per second, or inf (no limit)"),
        ("kubelet_qps", -INF, "must be a rate over 0 per second, or inf (no limit)"),
        # Durations: finite, at most upstream's forever, the furthest a deadline may lie.
        ("init_attempt_timeout_s", INF, OVER_0),
        ("init_attempt_timeout_s", 0.0, OVER_0),
        ("expectation_timeout_s", 1e300, OVER_0),
        ("recycle_timeout_s", NAN, OVER_0),
        ("claim_retry_interval_s", INF, FROM_0),
        ("pod_delete_grace_s", -1.0, FROM_0),
        ("recycle_grace_s", 3_153_600_001, FROM_0),
        # The E2B defaults: what their extension keys take.
        (
            "e2b_default_claim_timeout_s",
            INF,
            "must be None or a number of seconds over 0, at most 9223372036 "
            "(what claim-timeout-seconds takes)",
        ),
        (
            "e2b_default_wait_ready_timeout_s",
            1e300,
            "must be None or a number of seconds over 0, at most 9223372036 "
            "(what wait-ready-timeout-seconds takes)",
        ),
        (
            "e2b_default_claim_timeout_s",
            0.0,
            "must be None or a number of seconds over 0, at most 9223372036 "
            "(what claim-timeout-seconds takes)",
        ),
        # A pause waits 60 s for its pod to stop: a longer grace would fail every pause.
        (
            "pause_pod_grace_s",
            60.0,
            "must be a number of seconds from 0 to under 60 (an E2B pause waits 60 s for its pod)",
        ),
        (
            "pause_pod_grace_s",
            INF,
            "must be a number of seconds from 0 to under 60 (an E2B pause waits 60 s for its pod)",
        ),
    ],
)
def test_a_numeric_knob_out_of_its_range_is_refused_naming_the_range(
    knob: str, value: float, allowed: str
) -> None:
    """Every number of a profile has a range the model can serve: infinite, huge or NaN
    values (and ones no claim could use) are refused at the profile, naming the knob and
    the range, not deep inside a claim as an OverflowError or a failure of every pause."""
    with pytest.raises(ValueError) as info:
        override(get_profile(DEFAULT_PROFILE), knob, value)
    assert str(info.value) == f"invalid value for profile knob {knob!r}: {allowed}, got {value!r}"


def test_numeric_knobs_take_the_ends_of_their_ranges() -> None:
    """The bounds themselves are served, and an infinite rate is no limit."""
    head = get_profile(DEFAULT_PROFILE)
    for knob, value in [
        ("claim_workers", 1),
        ("claim_workers", 2**63 - 1),
        ("candidate_count", sys.maxsize),
        ("percentage_of_nodes_to_score", 100),
        ("create_qps", INF),
        ("controller_qps", 5e-324),
        ("expectation_timeout_s", 3_153_600_000),
        ("claim_retry_interval_s", 0.0),
        ("e2b_default_claim_timeout_s", 9_223_372_036),
        ("e2b_default_wait_ready_timeout_s", 0.5),
        ("e2b_default_wait_ready_timeout_s", None),
        ("pause_pod_grace_s", 59.9),
    ]:
        assert getattr(override(head, knob, value), knob) == value


NUMERIC_KNOBS = [
    name
    for name, field in Profile.model_fields.items()
    if field.annotation in (int, float, float | None)
]


@pytest.mark.parametrize("knob", NUMERIC_KNOBS)
def test_every_numeric_knob_has_a_range(knob: str) -> None:
    """Each number knob, the ones added later too, is bounded: NaN and infinity are refused
    (but for a rate, where infinity is no limit), and so is a count past a Go int."""
    head = get_profile(DEFAULT_PROFILE)
    if Profile.model_fields[knob].annotation is int:
        refused: list[float] = [2**63]
    else:
        refused = [NAN] if knob.endswith("_qps") else [NAN, INF]
    for value in refused:
        with pytest.raises(ValueError, match=f"invalid value for profile knob {knob!r}"):
            override(head, knob, value)


def test_profiles_round_trip_through_plain_data() -> None:
    """model_dump() and model_validate() (and JSON) give back an equal profile."""
    for profile in PROFILES.values():
        assert Profile.model_validate(profile.model_dump()) == profile
        assert Profile.model_validate_json(profile.model_dump_json()) == profile


def test_an_infinite_rate_round_trips_through_json() -> None:
    """A rate of no limit is written as ``Infinity`` and read back (not as null, refused)."""
    unlimited = get_profile(DEFAULT_PROFILE).with_overrides(create_qps=INF)
    assert Profile.model_validate_json(unlimited.model_dump_json()) == unlimited


def test_a_partial_latency_table_is_completed_from_the_defaults() -> None:
    """A profile built with a few latencies gets the defaults for the rest."""
    profile = Profile(name="quick", latencies={"image.pull": "fixed(1s)"})
    assert profile.latencies["image.pull"] == Fixed(value=1.0)
    assert profile.latencies["api.get"] == DEFAULT_LATENCIES["api.get"]


def test_latency_lookup_names_an_unknown_latency() -> None:
    """Profile.latency returns a distribution, or a ValueError naming the unknown name."""
    profile = get_profile(DEFAULT_PROFILE)
    assert profile.latency("api.get") == DEFAULT_LATENCIES["api.get"]
    with pytest.raises(ValueError) as info:
        profile.latency("api.gte")
    assert "unknown latency 'api.gte'" in str(info.value)


def test_profiles_are_immutable() -> None:
    """Assigning a knob fails; with_overrides is the way to change one."""
    profile = get_profile(DEFAULT_PROFILE)
    with pytest.raises(ValueError):
        profile.claim_workers = 1  # type: ignore[misc]


def test_knobs_carry_their_descriptions() -> None:
    """Each knob's attribute docstring is its field description, for docs and the CLI."""
    assert all(Profile.model_fields[name].description for name in Profile.knob_names())


@pytest.mark.parametrize("field", ["name", "description"])
def test_a_profiles_identity_is_no_knob(field: str) -> None:
    """``name`` and ``description`` say which profile it is: no override renames one.

    A renamed HEAD profile would report itself as ``openkruise-v0.3.0 (changed: ...
    retry ...)``, or, under a name of no built-in profile, hide every change
    (``summary()`` compares with the built-in profile of its name). The plugin's
    marker and ini, the server's config and the scenarios all check knobs so.
    """
    head = get_profile("openkruise-head")
    assert field not in Profile.knob_names()
    problem = Profile.knob_problem(field)
    assert problem == (
        f"the profile's {field}, not a knob: choose a profile by its name "
        "(the profile setting beside the knobs)"
    )
    with pytest.raises(ValueError, match=f"the profile's {field}, not a knob"):
        overrides: dict[str, Any] = {field: "openkruise-v0.3.0"}
        head.with_overrides(**overrides)
    changed = head.with_overrides(claim_workers=7)
    assert (changed.name, changed.description) == (head.name, head.description)
    assert changed.summary() == "openkruise-head (changed: claim_workers)"


def test_a_summary_names_what_was_changed_from_the_built_in_profile() -> None:
    """with_overrides keeps the name; summary() says which knobs and latencies differ."""
    old = get_profile("openkruise-v0.3.0")
    assert old.changes() == [] and old.summary() == "openkruise-v0.3.0"
    changed = old.with_overrides(retry="exponential", latencies={"image.pull": "exp(3s)"})
    assert changed.name == "openkruise-v0.3.0"
    assert changed.summary() == "openkruise-v0.3.0 (changed: retry, image.pull)"
    # Set back to the built-in's own value, a knob is no change.
    assert old.with_overrides(retry="fixed").summary() == "openkruise-v0.3.0"
    # A profile of its own has nothing to compare with.
    assert Profile(name="quick", claim_workers=1).summary() == "quick"
