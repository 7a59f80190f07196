"""kubectl-like tables: printer columns per kind, kubectl's AGE format and tab-writer layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest

from pytest_kruise_agents.api import (
    Condition,
    ObjectMeta,
    Pod,
    PodStatus,
    Sandbox,
    SandboxClaim,
    SandboxPhase,
    SandboxSet,
    format_age,
    keys,
    load_manifest,
    printer_columns,
    render_table,
)
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.pod import ContainerStatus
from pytest_kruise_agents.api.sandbox import SandboxSpec, SandboxStatus
from pytest_kruise_agents.api.sandboxclaim import ClaimPhase, SandboxClaimSpec, SandboxClaimStatus
from pytest_kruise_agents.api.sandboxset import SandboxSetStatus

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def ago(**kwargs: float) -> datetime:
    return NOW - timedelta(**kwargs)


def rows(text: str) -> list[list[str]]:
    """Split a rendered table into cells (cells never contain three spaces)."""
    return [[c.strip() for c in line.split("   ") if c.strip()] for line in text.splitlines()]


def running(name: str = "main", *, ready: bool = True, restarts: int = 0) -> ContainerStatus:
    """A container status as the kubelet writes a running one."""
    return ContainerStatus.model_validate(
        {
            "name": name,
            "image": "i",
            "ready": ready,
            "started": True,
            "restartCount": restarts,
            "state": {"running": {"startedAt": ago(minutes=1)}},
        }
    )


def waiting(name: str, reason: str, *, restarts: int = 0) -> ContainerStatus:
    """A container status waiting for ``reason``."""
    return ContainerStatus.model_validate(
        {
            "name": name,
            "image": "i",
            "started": False,
            "restartCount": restarts,
            "state": {"waiting": {"reason": reason}},
        }
    )


def terminated(
    name: str, reason: str | None, exit_code: int = 0, signal: int = 0
) -> ContainerStatus:
    """A container status of an instance that ended."""
    return ContainerStatus.model_validate(
        {
            "name": name,
            "image": "i",
            "state": {"terminated": {"exitCode": exit_code, "reason": reason, "signal": signal}},
        }
    )


# --------------------------------------------------------------------------- AGE


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=45.9), "45s"),
        (timedelta(seconds=90), "90s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=5), "5m"),
        (timedelta(minutes=5, seconds=30), "5m30s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=20), "3h20m"),
        (timedelta(hours=7, minutes=59), "7h59m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=47), "47h"),
        (timedelta(days=2), "2d"),
        (timedelta(days=2, hours=5), "2d5h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8, hours=5), "8d"),
        (timedelta(days=400), "400d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=365 * 3 + 20), "3y20d"),
        (timedelta(days=365 * 7 + 100), "7y100d"),
        (timedelta(days=365 * 8 + 100), "8y"),
        (timedelta(days=365 * 8), "8y"),
        (timedelta(days=365 * 10 + 100), "10y"),
    ],
)
def test_age_follows_kubectl_human_duration(delta: timedelta, expected: str) -> None:
    """format_age coarsens with distance exactly like apimachinery's HumanDuration."""
    assert format_age(delta) == expected


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(days=365 * 292 + 364), "292y"),
        (timedelta(microseconds=(2**63 - 1) // 1000), "292y"),  # Go's longest Duration
        (timedelta(days=365 * 293), "292y"),
        (timedelta(days=365 * 7000), "292y"),
        (timedelta.max, "292y"),
    ],
)
def test_age_stops_at_292y_as_kubectls_duration_saturates(delta: timedelta, expected: str) -> None:
    """kubectl's ``time.Since`` saturates at 2^63 - 1 ns: no age reads more than ``292y``.

    The model's clock runs to the year 9900, so ages of thousands of years can be asked.
    """
    assert format_age(delta) == expected


def test_small_clock_skew_reads_zero_and_more_reads_invalid() -> None:
    """Up to a second in the future reads ``0s``; two seconds or more reads ``<invalid>``."""
    assert format_age(timedelta(seconds=-1.9)) == "0s"
    assert format_age(timedelta(seconds=-2)) == "<invalid>"


# --------------------------------------------------------------------------- columns


def test_each_kind_prints_its_crd_printer_columns() -> None:
    """The headers are the upstream CRD printer columns (reference §1.1)."""
    assert printer_columns("Sandbox") == [
        "NAME",
        "STATUS",
        "AGE",
        "CLAIMED",
        "SHUTDOWN_TIME",
        "PAUSE_TIME",
        "RECYCLEDCOUNT",
        "MESSAGE",
    ]
    assert printer_columns("SandboxSet") == [
        "NAME",
        "REPLICAS",
        "AVAILABLE",
        "UPDATEDREPLICAS",
        "UPDATEDAVAILABLEREPLICAS",
        "UPDATEREVISION",
        "AGE",
    ]
    assert printer_columns("SandboxClaim") == [
        "NAME",
        "PHASE",
        "TEMPLATE",
        "DESIRED",
        "CLAIMED",
        "AGE",
    ]
    assert printer_columns("Pod") == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]


def test_pods_print_kubectls_own_columns_and_wide_extras() -> None:
    """kubectl's podColumnDefinitions: IP, node, nominated node and readiness gates are wide only."""
    assert printer_columns("Pod", wide=True) == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED NODE",
        "READINESS GATES",
    ]


def test_all_namespaces_puts_namespace_first_and_wide_adds_columns() -> None:
    """``-A`` prepends NAMESPACE; ``-o wide`` appends the extra columns."""
    assert printer_columns("SandboxClaim", all_namespaces=True)[:2] == ["NAMESPACE", "NAME"]
    assert printer_columns("Pod", wide=True, all_namespaces=True)[-2:] == [
        "NOMINATED NODE",
        "READINESS GATES",
    ]


@pytest.mark.parametrize("kind", ["Sandbox", "SandboxSet", "SandboxClaim", "SandboxTemplate"])
def test_wide_adds_nothing_to_the_crds_columns(kind: str) -> None:
    """``kubectl get -o wide`` adds a CRD's printer columns with a priority above 0; the
    CRDs (reference §1.1) give none a priority, so the wide table is the plain one."""
    assert printer_columns(kind, wide=True) == printer_columns(kind)


def test_unknown_kinds_have_no_columns() -> None:
    """Asking for the columns of an unknown kind is an ``InvalidError`` naming ``kind``."""
    with pytest.raises(InvalidError, match="Deployment") as err:
        printer_columns("Deployment")
    assert err.value.field == "kind"


@pytest.mark.parametrize(
    "name", ["sbx", "sandboxes", "sandbox", "SANDBOX", "sandboxes.agents.kruise.io"]
)
def test_printer_columns_take_every_name_kubectl_takes(name: str) -> None:
    """The names ``Cluster.table`` and ``resolve_kind`` take: short names, plurals, any case."""
    assert printer_columns(name) == printer_columns("Sandbox")


@pytest.mark.parametrize(
    ("now", "got"),
    [
        (datetime(2026, 1, 1, 0, 5), "got a naive one (no tzinfo)"),  # datetime.now()
        ("2026-01-01T00:05:00Z", "got str"),
        (1767225900.0, "got float"),
    ],
)
def test_a_now_that_is_no_aware_datetime_is_refused_naming_it(now: Any, got: str) -> None:
    """The objects' times are aware: a naive ``now`` cannot be compared with them, so one
    ``InvalidError`` naming ``now`` rather than a ``TypeError`` from a subtraction."""
    for objects in ([claimed_sandbox()], []):
        with pytest.raises(InvalidError) as err:
            render_table(objects, now)
        assert err.value.field == "now"
        assert err.value.reason == f"must be a timezone-aware datetime.datetime, {got}"


@pytest.mark.parametrize("delta", [90, 90.0, "5m", None])
def test_format_age_of_something_that_is_no_timedelta_is_refused_naming_it(delta: Any) -> None:
    with pytest.raises(InvalidError) as err:
        format_age(delta)
    assert err.value.field == "delta"
    assert err.value.reason == f"must be a datetime.timedelta, got {type(delta).__name__}"


@pytest.mark.parametrize("obj", ["sbx", None, {"kind": "Sandbox"}])
def test_a_table_of_something_that_is_no_model_is_refused_naming_it(obj: Any) -> None:
    """One clear error naming the item, not an ``AttributeError`` from deep inside."""
    with pytest.raises(InvalidError) as err:
        render_table([claimed_sandbox(), obj], NOW)
    assert err.value.field == "objects[1]"
    assert err.value.reason.startswith("must be a Sandbox, SandboxSet, SandboxClaim")


# --------------------------------------------------------------------------- tables


def claimed_sandbox() -> Sandbox:
    return Sandbox(
        metadata=ObjectMeta(
            name="pool-x7k2p",
            namespace="team-a",
            creation_timestamp=ago(minutes=5, seconds=30),
            labels={keys.LABEL_SANDBOX_CLAIMED: "true"},
        ),
        spec=SandboxSpec(shutdown_time=NOW + timedelta(minutes=5)),
        status=SandboxStatus(phase=SandboxPhase.RUNNING, recycled_count=0),
    )


def test_a_sandbox_row_shows_its_printer_column_values() -> None:
    """Phase, age, claimed label, times as RFC 3339, counts, and ``<none>`` for what is missing."""
    table = rows(render_table([claimed_sandbox()], NOW))
    assert table[1] == [
        "pool-x7k2p",
        "Running",
        "5m30s",
        "true",
        "2026-01-01T12:05:00Z",
        "<none>",
        "0",
        "<none>",
    ]


def test_columns_are_left_aligned_and_separated_by_three_spaces() -> None:
    """Every cell starts where its header starts; the last column is not padded."""
    other = Sandbox(metadata=ObjectMeta(name="a", creation_timestamp=ago(seconds=2)))
    text = render_table([claimed_sandbox(), other], NOW)
    lines = text.splitlines()
    assert text.endswith("\n")
    assert lines[0].startswith("NAME         STATUS    AGE     CLAIMED   SHUTDOWN_TIME")
    assert lines[2].startswith("a            <none>    2s      <none>    <none>")
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    for line in lines[1:]:
        assert all(line[i] != " " and (i == 0 or line[i - 3 : i] == "   ") for i in starts)
        assert not line.endswith(" ")


def test_narrow_columns_get_kubectl_minimum_width() -> None:
    """A column is at least six characters wide including its padding, like kubectl's tab writer."""
    pod = Pod(metadata=ObjectMeta(name="p", creation_timestamp=ago(seconds=5)))
    header = render_table([pod], NOW, wide=True).splitlines()[0]
    assert header.startswith(
        "NAME   READY   STATUS    RESTARTS   AGE   IP       NODE     NOMINATED"
    )


def test_a_sandboxset_row_shows_its_counts() -> None:
    """Replicas, available and revision come from status; unset updated counts are ``<none>``."""
    pool = load_manifest(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "pool", "creationTimestamp": "2026-01-01T09:00:00Z"},
            "spec": {
                "replicas": 3,
                "template": {"spec": {"containers": [{"name": "m", "image": "i"}]}},
            },
        }
    )
    assert isinstance(pool, SandboxSet)
    pool = pool.model_copy(
        update={
            "status": SandboxSetStatus(replicas=3, available_replicas=2, update_revision="5d8f7c9b")
        }
    )
    assert rows(render_table([pool], NOW))[1] == [
        "pool",
        "3",
        "2",
        "<none>",
        "<none>",
        "5d8f7c9b",
        "3h",
    ]


def test_a_sandboxclaim_row_shows_phase_template_desired_and_claimed() -> None:
    """Phase and claimed count come from status, template and desired from spec."""
    claim = SandboxClaim(
        metadata=ObjectMeta(name="burst", creation_timestamp=ago(hours=30)),
        spec=SandboxClaimSpec(template_name="pool", replicas=10),
        status=SandboxClaimStatus(phase=ClaimPhase.CLAIMING, claimed_replicas=4),
    )
    assert rows(render_table([claim], NOW))[1] == ["burst", "Claiming", "pool", "10", "4", "30h"]


def test_a_pod_row_shows_readiness_status_ip_and_node() -> None:
    """A ready pod with one container reads ``1/1``; wide, IP and node come from status and spec."""
    pod = Pod(
        metadata=ObjectMeta(name="pool-x7k2p", creation_timestamp=ago(days=3)),
        spec={"nodeName": "node-1", "containers": [{"name": "main", "image": "i"}]},
        status=PodStatus(
            phase="Running",
            pod_ip="10.0.0.7",
            conditions=[Condition(type="Ready", status="True")],
            container_statuses=[running()],
        ),
    )
    assert rows(render_table([pod], NOW))[1] == ["pool-x7k2p", "1/1", "Running", "0", "3d"]
    assert rows(render_table([pod], NOW, wide=True))[1] == [
        "pool-x7k2p",
        "1/1",
        "Running",
        "0",
        "3d",
        "10.0.0.7",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_a_pods_sidecars_count_among_its_containers() -> None:
    """READY counts init containers with ``restartPolicy: Always`` (sidecars), not other ones:
    a started, ready sidecar is one more ready container."""
    spec = {
        "initContainers": [
            {"name": "setup", "image": "busybox:1"},
            {"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"},
        ],
        "containers": [{"name": "main", "image": "i"}],
    }
    ready = Pod(
        metadata=ObjectMeta(name="p", creation_timestamp=ago(minutes=1)),
        spec=spec,
        status=PodStatus(
            phase="Running",
            conditions=[Condition(type="Ready", status="True")],
            init_container_statuses=[terminated("setup", "Completed"), running("proxy")],
            container_statuses=[running()],
        ),
    )
    pending = Pod(metadata=ObjectMeta(name="q", creation_timestamp=ago(minutes=1)), spec=spec)
    table = rows(render_table([ready, pending], NOW))
    assert [row[1] for row in table[1:]] == ["2/2", "0/2"]


def test_readiness_gates_read_how_many_of_them_hold() -> None:
    """Wide, READINESS GATES is the number of gates whose condition is True over the gates."""
    pod = Pod(
        metadata=ObjectMeta(name="p", creation_timestamp=ago(minutes=1)),
        spec={
            "containers": [{"name": "main", "image": "i"}],
            "readinessGates": [{"conditionType": "a.io/lb"}, {"conditionType": "a.io/dns"}],
        },
        status=PodStatus(
            conditions=[
                Condition(type="a.io/lb", status="True"),
                Condition(type="a.io/dns", status="False"),
            ]
        ),
    )
    assert rows(render_table([pod], NOW, wide=True))[1][-1] == "1/2"


def test_a_pod_being_deleted_reads_terminating() -> None:
    """A pod with a deletion timestamp shows ``Terminating``, not its phase."""
    pod = Pod(
        metadata=ObjectMeta(name="p", creation_timestamp=ago(minutes=1), deletion_timestamp=NOW),
        status=PodStatus(phase="Running"),
    )
    assert rows(render_table([pod], NOW))[1][:3] == ["p", "0/0", "Terminating"]


@pytest.mark.parametrize(
    ("phase", "reason", "shown"),
    [
        ("Failed", "Killed", "Killed"),
        ("Failed", "Evicted", "Evicted"),
        ("Failed", None, "Failed"),
        ("Succeeded", None, "Succeeded"),
        ("Failed", "NodeLost", "Unknown"),
        ("Running", "NodeLost", "Unknown"),
        ("Pending", None, "Terminating"),
    ],
)
def test_a_pod_being_deleted_that_has_ended_keeps_its_status(
    phase: str, reason: str | None, shown: str
) -> None:
    """kubectl 1.27+ printPod: ``Terminating`` only for a pod that has not ended; a pod whose
    node was lost reads ``Unknown``; a Failed pod being deleted keeps its reason."""
    pod = Pod.model_validate(
        {
            "metadata": {
                "name": "p",
                "creationTimestamp": ago(minutes=1),
                "deletionTimestamp": NOW,
                "finalizers": ["x"],
            },
            "status": {"phase": phase, "reason": reason},
        }
    )
    assert rows(render_table([pod], NOW))[1][2] == shown


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("init failed:\nconnection refused", "init failed:..."),
        ("a\r\nb", "a..."),
        ("page\fbreak", "page..."),
        ("\nleading", "..."),
        ("colour \x1b[31mred", "colour ^[[31mred"),
    ],
)
def test_a_cell_ends_at_its_first_line_break(message: str, shown: str) -> None:
    """cli-runtime's printRows cuts a cell at its first ``\\n``, ``\\r`` or ``\\f`` and appends
    ``...``, so one row stays one line; ESC reads ``^[`` (EscapeTerminal)."""
    sbx = Sandbox(
        metadata=ObjectMeta(name="s", creation_timestamp=ago(seconds=1)),
        status=SandboxStatus(phase=SandboxPhase.FAILED, message=message),
    )
    text = render_table([sbx], NOW)
    assert len(text.splitlines()) == 2
    assert text.splitlines()[1].endswith("   " + shown)


def test_an_object_without_creation_time_has_unknown_age() -> None:
    """No creationTimestamp prints ``<unknown>`` as kubectl does for a zero time."""
    sbx = Sandbox(metadata=ObjectMeta(name="s"))
    assert rows(render_table([sbx], NOW))[1][2] == "<unknown>"


def test_all_namespaces_adds_the_namespace_of_each_row() -> None:
    """With ``all_namespaces`` each row starts with the object's namespace."""
    table = rows(render_table([claimed_sandbox()], NOW, all_namespaces=True))
    assert table[0][:2] == ["NAMESPACE", "NAME"]
    assert table[1][:2] == ["team-a", "pool-x7k2p"]


def test_a_wide_sandbox_table_is_the_plain_one() -> None:
    """As ``kubectl get sbx -o wide``: the CRD has no wide column, so no IP or node is added."""
    sbx = claimed_sandbox().model_copy(
        update={
            "status": SandboxStatus(
                phase=SandboxPhase.RUNNING, sandbox_ip="10.0.0.7", node_name="node-1"
            )
        }
    )
    assert render_table([sbx], NOW, wide=True) == render_table([sbx], NOW)


def test_several_kinds_print_one_table_each_with_qualified_names() -> None:
    """Mixed kinds print a table per kind, separated by a blank line, names prefixed by type."""
    pod = Pod(metadata=ObjectMeta(name="pool-x7k2p", creation_timestamp=ago(minutes=1)))
    text = render_table([claimed_sandbox(), pod], NOW)
    tables = text.split("\n\n")
    assert len(tables) == 2
    assert "sandbox.agents.kruise.io/pool-x7k2p" in tables[0]
    assert "pod/pool-x7k2p" in tables[1]


def test_an_empty_list_prints_no_resources_found() -> None:
    """No objects print kubectl's ``No resources found`` line."""
    assert render_table([], NOW) == "No resources found in default namespace.\n"
    assert render_table([], NOW, namespace="team-a") == "No resources found in team-a namespace.\n"
    assert render_table([], NOW, all_namespaces=True) == "No resources found\n"


# --------------------------------------------------------------------------- pod containers


def pod_with(
    containers: list[ContainerStatus],
    init: list[ContainerStatus] | None = None,
    *,
    spec: dict[str, object] | None = None,
    phase: str = "Running",
    ready: bool = False,
    reason: str | None = None,
) -> Pod:
    """A bound pod whose kubelet wrote these container statuses."""
    names = [c.name for c in containers]
    default_spec = {"nodeName": "n", "containers": [{"name": n, "image": "i"} for n in names]}
    return Pod.model_validate(
        {
            "metadata": {"name": "p", "creationTimestamp": ago(minutes=10)},
            "spec": spec or default_spec,
            "status": {
                "phase": phase,
                "reason": reason,
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                "containerStatuses": [c.model_dump(by_alias=True) for c in containers],
                "initContainerStatuses": [c.model_dump(by_alias=True) for c in init or []],
            },
        }
    )


def cells(pod: Pod) -> list[str]:
    """READY, STATUS and RESTARTS of the pod's row."""
    return rows(render_table([pod], NOW))[1][1:4]


def test_ready_counts_the_running_ready_containers_not_the_pods_condition() -> None:
    """READY is how many containers run and are ready (printPod), whatever the pod's Ready."""
    pod = pod_with([running("a"), running("b", ready=False)], ready=True)
    assert cells(pod)[0] == "1/2"
    assert (
        cells(pod_with([], spec={"containers": [{"name": "a", "image": "i"}]}, ready=True))[0]
        == "0/1"
    )


def test_a_containers_waiting_reason_is_the_pods_status() -> None:
    """``ImagePullBackOff``, ``CrashLoopBackOff``... are the containers' waiting reasons: STATUS
    shows them over the phase; the last container's first."""
    assert cells(pod_with([waiting("main", "ImagePullBackOff")], phase="Pending"))[1] == (
        "ImagePullBackOff"
    )
    two = pod_with([waiting("a", "CrashLoopBackOff"), waiting("b", "ErrImagePull")])
    assert cells(two)[1] == "CrashLoopBackOff"


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (terminated("main", "OOMKilled", 137), "OOMKilled"),
        (terminated("main", None, 2), "ExitCode:2"),
        (terminated("main", None, 137, signal=9), "Signal:9"),
    ],
)
def test_a_terminated_container_gives_its_reason_exit_code_or_signal(
    status: ContainerStatus, shown: str
) -> None:
    """A container that ended gives its reason, else ``ExitCode:N`` or ``Signal:N``."""
    assert cells(pod_with([status]))[1] == shown


def test_a_completed_container_beside_a_running_one_reads_running_or_not_ready() -> None:
    """``Completed`` with a container still running reads ``Running`` on a Ready pod, else
    ``NotReady``."""
    statuses = [running("a"), terminated("b", "Completed")]
    assert cells(pod_with(statuses, ready=True))[1] == "Running"
    assert cells(pod_with(statuses, ready=False))[1] == "NotReady"


def test_restarts_sum_the_restart_counts_with_the_age_of_the_last_termination() -> None:
    """RESTARTS is the containers' restart counts summed, followed by how long ago the latest
    ``lastState.terminated.finishedAt`` was; no restart reads a bare ``0``."""
    crashing = ContainerStatus.model_validate(
        {
            "name": "main",
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(seconds=42)}},
        }
    )
    side = running("side", restarts=1)
    assert cells(pod_with([crashing, side]))[1:] == ["CrashLoopBackOff", "5 (42s ago)"]
    assert cells(pod_with([running()]))[2] == "0"


def init_spec(*names: str, sidecar: str | None = None) -> dict[str, object]:
    init = [{"name": n, "image": "i"} for n in names]
    if sidecar is not None:
        init.append({"name": sidecar, "image": "i", "restartPolicy": "Always"})
    return {"nodeName": "n", "initContainers": init, "containers": [{"name": "main", "image": "i"}]}


@pytest.mark.parametrize(
    ("init", "shown"),
    [
        ([waiting("a", "PodInitializing"), waiting("b", "PodInitializing")], "Init:0/2"),
        ([terminated("a", "Completed"), waiting("b", "PodInitializing")], "Init:1/2"),
        ([terminated("a", "Completed"), waiting("b", "ImagePullBackOff")], "Init:ImagePullBackOff"),
        ([terminated("a", "Error", 1), waiting("b", "PodInitializing")], "Init:Error"),
        ([terminated("a", None, 3), waiting("b", "PodInitializing")], "Init:ExitCode:3"),
    ],
)
def test_an_initialising_pod_reads_its_first_unfinished_init_container(
    init: list[ContainerStatus], shown: str
) -> None:
    """The first init container not done gives ``Init:<reason>``, or ``Init:<done>/<all>``
    while it waits to initialise; the containers are not looked at."""
    pod = pod_with(
        [waiting("main", "PodInitializing")], init, spec=init_spec("a", "b"), phase="Pending"
    )
    assert cells(pod)[1] == shown


def test_an_initialised_pod_reads_its_containers() -> None:
    """Init containers done and a sidecar started, the containers give the status:
    ``PodInitializing`` while they wait to be created."""
    init = [terminated("a", "Completed"), running("side")]
    spec = init_spec("a", sidecar="side")
    pod = pod_with([waiting("main", "PodInitializing")], init, spec=spec, phase="Pending")
    assert cells(pod)[:2] == ["1/2", "PodInitializing"]


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ({"nodeName": "n", "containers": [{"name": "main", "image": "i"}]}, "ContainerCreating"),
        (init_spec("a", sidecar="side"), "Init:0/2"),
        ({"containers": [{"name": "main", "image": "i"}]}, "Pending"),
    ],
)
def test_a_bound_pod_the_kubelet_has_not_reported_reads_as_its_first_sync_writes_it(
    spec: dict[str, object], shown: str
) -> None:
    """A bound Pending pod with no container status yet (the model's kubelet writes when the
    containers run) reads ``ContainerCreating``, or ``Init:0/N``; an unbound one ``Pending``."""
    pod = Pod.model_validate(
        {"metadata": {"name": "p", "creationTimestamp": ago(seconds=3)}, "spec": spec}
    )
    assert cells(pod)[1] == shown


def test_a_pod_without_an_ip_reads_none_in_the_ip_column() -> None:
    """printPod writes ``<none>`` for an empty ``podIP``, as for an absent one; no gates
    (``readinessGates: []``) read ``<none>`` too, not ``0/0``."""
    pod = Pod(
        metadata=ObjectMeta(name="p", creation_timestamp=ago(minutes=1)),
        spec={"containers": [{"name": "main", "image": "i"}], "readinessGates": []},
        status=PodStatus(phase="Pending", pod_ip=""),
    )
    row = rows(render_table([pod], NOW, wide=True))[1]
    assert row[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_a_pod_whose_containers_all_completed_reads_completed() -> None:
    """``Completed`` stays when no container still runs (a finished job-like sandbox)."""
    pod = pod_with([terminated("main", "Completed")], phase="Succeeded")
    assert cells(pod)[1] == "Completed"


def test_restarts_age_is_that_of_the_latest_termination_of_any_container() -> None:
    """Of two containers' last terminations, the later one gives the age, whatever their order;
    a last termination without a restart (``restartCount: 0``) reads a bare ``0``."""

    def ended(name: str, seconds: int, restarts: int = 1) -> ContainerStatus:
        return ContainerStatus.model_validate(
            {
                "name": name,
                "restartCount": restarts,
                "ready": True,
                "state": {"running": {"startedAt": ago(seconds=1)}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(seconds=seconds)}},
            }
        )

    assert cells(pod_with([ended("a", 300), ended("b", 42)]))[2] == "2 (42s ago)"
    assert cells(pod_with([ended("a", 42), ended("b", 300)]))[2] == "2 (42s ago)"
    assert cells(pod_with([ended("a", 42, restarts=0)]))[2] == "0"


class _NoOffset(tzinfo):
    """A tzinfo that knows no offset: its datetimes are naive (``utcoffset()`` is ``None``)."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_a_now_whose_tzinfo_gives_no_offset_is_naive_and_refused() -> None:
    """Python's definition of naive: no tzinfo, or one whose ``utcoffset()`` is ``None``."""
    now = datetime(2026, 1, 1, 0, 5, tzinfo=_NoOffset())
    with pytest.raises(InvalidError) as err:
        render_table([claimed_sandbox()], now)
    assert err.value.field == "now"
    assert "naive" in err.value.reason
