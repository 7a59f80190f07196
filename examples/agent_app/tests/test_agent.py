"""The agent application against a fake OpenKruise Agents cluster, through the unmodified E2B SDK."""

from __future__ import annotations

import pytest
from agent import Agent, AgentConfig, SandboxUnavailable

from pytest_kruise_agents.delivery import Burst
from pytest_kruise_agents.plugin.benchmark import DeliveryBenchmark
from pytest_kruise_agents.plugin.clock import KruiseClock
from pytest_kruise_agents.plugin.faults import KruiseFaults
from pytest_kruise_agents.plugin.server import KruiseE2B
from simulator.cluster import Cluster


def test_happy_path_runs_steps_in_a_warm_sandbox(agent: Agent, kruise_cluster: Cluster) -> None:
    agent.setup.append("mkdir -p work && printf 'a\\nb\\nc\\n' > work/lines.txt")
    agent.start()
    result = agent.run("wc -l < work/lines.txt")
    assert result.ok
    assert result.stdout.strip() == "3"
    assert kruise_cluster.last_record().warm  # taken from the warm pool


def test_failed_step_is_reported_not_raised(agent: Agent) -> None:
    result = agent.run("echo oops >&2; exit 3")
    assert (result.exit_code, result.stderr) == (3, "oops\n")


@pytest.mark.kruise(pools={"base": 2})
def test_pool_exhaustion_is_reported_and_clears_once_the_pool_refills(
    kruise_e2b: KruiseE2B, kruise_clock: KruiseClock
) -> None:
    config = AgentConfig(warm_only=True, claim_timeout=1)
    first, second, third = Agent(config), Agent(config), Agent(config)
    first.start()
    second.start()
    with pytest.raises(SandboxUnavailable, match="no stock"):
        third.start()
    kruise_clock.advance(120)  # the SandboxSet controller refills the pool meanwhile
    third.start()
    for agent in (first, second, third):
        agent.close()


@pytest.mark.kruise(pools={"base": 1})
def test_claim_times_out_when_new_sandboxes_start_slowly(
    kruise_e2b: KruiseE2B, kruise_faults: KruiseFaults
) -> None:
    kruise_faults.set_latency("pod.create", "60s")  # every new sandbox takes a minute
    holder = Agent()
    holder.start()  # the only warm sandbox
    waiting = Agent(AgentConfig(claim_timeout=10))
    with pytest.raises(SandboxUnavailable, match="deadline exceeded"):
        waiting.start()
    holder.close()


def test_expired_sandbox_is_replaced_and_setup_replayed(
    agent: Agent, kruise_clock: KruiseClock
) -> None:
    agent.setup.append("echo ready > state.txt")
    first = agent.start()
    kruise_clock.advance(agent.config.sandbox_timeout + 1)  # the sandbox reaches its timeout
    result = agent.run("cat state.txt")
    assert result.stdout == "ready\n"
    assert agent.restarts == 1
    assert agent.sandbox is not None and agent.sandbox.sandbox_id != first


def test_agent_runtime_init_failure_makes_the_sandbox_unavailable(
    agent: Agent, kruise_faults: KruiseFaults
) -> None:
    kruise_faults.inject("runtime_init_failure", selector={"template": "base"})
    with pytest.raises(SandboxUnavailable, match="init runtime"):
        agent.start()


def test_one_failed_runtime_init_is_retried_transparently(
    agent: Agent, kruise_faults: KruiseFaults
) -> None:
    kruise_faults.inject("runtime_init_failure", count=1)  # only the first /init call fails
    agent.start()
    assert agent.run("echo ok").stdout == "ok\n"
    assert [f["fired"] for f in kruise_faults.active()] == [1]


def test_warm_delivery_is_sub_second(delivery_benchmark: DeliveryBenchmark) -> None:
    result = delivery_benchmark(Burst(3))
    result.assert_latency()  # p99 of warm deliveries under 1 s
