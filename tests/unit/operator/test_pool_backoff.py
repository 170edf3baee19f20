"""Leaving out a pool whose serving pods could not get a node, and trying it again."""

from __future__ import annotations

from lepton_operator.api.spec import PoolSpec
from lepton_operator.constants import POOL_LABEL
from lepton_operator.controller import status_changes
from lepton_operator.planning.backoff import (
    MAX_BACKOFF_S,
    PoolBackoff,
    backoff_s,
    pools_to_avoid,
)
from lepton_operator.reconcile.record import pool_timeouts, unschedulable_pools

TIMEOUTS = {"gpu": 60.0, "cpu": 60.0}


def test_the_back_off_starts_at_the_timeout_and_doubles_to_a_cap() -> None:
    assert [backoff_s(60, n) for n in (1, 2, 3)] == [60, 120, 240]
    assert backoff_s(60, 20) == MAX_BACKOFF_S


def test_a_waiting_pool_is_left_out_until_its_retry_time() -> None:
    first = pools_to_avoid({"gpu"}, (), TIMEOUTS, 1000.0)
    assert first.avoid == {"gpu"} and first.retry_at == {"gpu": 1060.0}
    # Its pods drained, the pool is still left out until the retry time...
    drained = pools_to_avoid(set(), first.backoffs, TIMEOUTS, 1030.0)
    assert drained.avoid == {"gpu"} and drained.backoffs == first.backoffs
    # ...then tried again, the failure count kept.
    tried = pools_to_avoid(set(), drained.backoffs, TIMEOUTS, 1061.0)
    assert tried.avoid == frozenset() and tried.backoffs == first.backoffs


def test_the_same_wait_counts_once_and_each_new_one_doubles() -> None:
    first = pools_to_avoid({"gpu"}, (), TIMEOUTS, 1000.0)
    same = pools_to_avoid({"gpu"}, first.backoffs, TIMEOUTS, 1020.0)
    assert same.backoffs == first.backoffs
    again = pools_to_avoid({"gpu"}, first.backoffs, TIMEOUTS, 1200.0)
    assert again.backoffs == (PoolBackoff("gpu", 2, 1320.0),)


def test_a_pool_removed_from_the_spec_is_forgotten() -> None:
    backoffs = (PoolBackoff("old", 1, 2000.0),)
    assert pools_to_avoid(set(), backoffs, TIMEOUTS, 1000.0).avoid == frozenset()


def test_a_status_key_the_pass_removed_is_nulled_in_the_patch() -> None:
    current = {"phase": "Ready", "poolBackoff": [{"pool": "gpu"}], "kopf": {"progress": {}}}
    wanted = {"phase": "Ready", "replicas": 2}
    assert status_changes(current, wanted) == {"replicas": 2, "poolBackoff": None}


def _pool(name: str, provisioning_s: int) -> PoolSpec:
    return PoolSpec.model_validate(
        {"name": name, "hourlyPriceUSD": 1.0, "provisioningSeconds": provisioning_s}
    )


def test_a_pool_waits_twice_its_provisioning_time_and_at_least_the_configured_wait() -> None:
    pools = [_pool("fixed", 0), _pool("autoscaled", 180)]
    assert pool_timeouts(pools, 60.0) == {"fixed": 60.0, "autoscaled": 360.0}
    # config.serving.nodeWaitSeconds shortens only the floor: a pool that provisions
    # slowly keeps its own wait.
    assert pool_timeouts(pools, 20.0) == {"fixed": 20.0, "autoscaled": 360.0}


def test_a_pod_waiting_for_a_node_past_the_shorter_wait_calls_its_pool_full() -> None:
    pods = [
        {
            "metadata": {
                "labels": {POOL_LABEL: "fixed"},
                "creationTimestamp": "2026-12-06T10:00:00Z",
            },
            "spec": {},
            "status": {"phase": "Pending"},
        }
    ]
    limits = pool_timeouts([_pool("fixed", 0)], 20.0)
    assert unschedulable_pools(pods, limits, "2026-12-06T10:00:15Z") == set()
    assert unschedulable_pools(pods, limits, "2026-12-06T10:00:25Z") == {"fixed"}
    # Scheduled (a node name) but not yet running is not waiting for a node.
    pods[0]["spec"] = {"nodeName": "node-1"}
    assert unschedulable_pools(pods, limits, "2026-12-06T10:05:00Z") == set()
