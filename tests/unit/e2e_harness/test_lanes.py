"""The e2e lanes (lepton_e2e.lanes): which module runs where, whose models each lane's
operator watches, the whole-cluster turn, and the cluster shared by the run's processes."""

from __future__ import annotations

import ast
import os
import threading
import time
from pathlib import Path

import pytest

from lepton_e2e.lanes import (
    LANE_A,
    LANE_B,
    LANE_B_MODULES,
    SOLO,
    cluster_in_use,
    cluster_turn,
    lane_of,
)
from lepton_operator.watched import watches

E2E_TESTS = Path(__file__).resolve().parents[3] / "e2e" / "tests"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_E2E_HOME", str(tmp_path / "lepton-e2e"))


def test_every_lane_b_module_exists_and_the_rest_are_lane_a() -> None:
    modules = {path.name for path in E2E_TESTS.glob("test_*.py")}
    assert modules > LANE_B_MODULES
    assert lane_of(E2E_TESTS / "test_serving.py") is LANE_B
    assert lane_of("e2e/tests/test_faults.py") is LANE_A


def test_each_lanes_operator_watches_its_own_namespaces_only() -> None:
    for token in ("0a1b2c", "b0b0b0", "ffffff"):
        mine, theirs = LANE_A.namespace(token), LANE_B.namespace(token)
        assert watches(mine, LANE_A.watch) and not watches(mine, LANE_B.watch)
        assert watches(theirs, LANE_B.watch) and not watches(theirs, LANE_A.watch)
    assert watches("gitops-models", LANE_A.watch) and watches("anything", SOLO.watch)
    assert LANE_A.release != LANE_B.release
    assert LANE_A.operator_namespace != LANE_B.operator_namespace
    assert LANE_A.prometheus_port != LANE_B.prometheus_port


def _later(action, events: list[str], name: str) -> threading.Thread:
    def run() -> None:
        with action():
            events.append(f"{name} in")
            time.sleep(0.3)
            events.append(f"{name} out")

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.1)
    return thread


def test_a_whole_cluster_test_waits_for_the_running_one_and_goes_before_the_next() -> None:
    events: list[str] = []
    threads = [
        _later(lambda: cluster_turn(whole_cluster=False), events, "shared"),
        _later(lambda: cluster_turn(whole_cluster=True), events, "whole"),
        _later(lambda: cluster_turn(whole_cluster=False), events, "next"),
    ]
    for thread in threads:
        thread.join(timeout=10)
    assert events == ["shared in", "shared out", "whole in", "whole out", "next in", "next out"]


def test_two_shared_tests_run_side_by_side() -> None:
    events: list[str] = []
    threads = [_later(lambda: cluster_turn(whole_cluster=False), events, n) for n in "ab"]
    for thread in threads:
        thread.join(timeout=10)
    assert events[:2] == ["a in", "b in"]


class _FakeCluster:
    def __init__(self, up: bool) -> None:
        self.running = up
        self.ups = self.downs = 0

    def is_up(self) -> bool:
        return self.running

    def up(self) -> Path:
        self.ups += int(not self.running)
        self.running = True
        return Path("/kubeconfig")

    def down(self) -> None:
        self.downs += 1
        self.running = False


def _use(cluster: _FakeCluster, keep: bool = False):  # type: ignore[no-untyped-def]
    return cluster_in_use(cluster.is_up, cluster.up, cluster.down, keep)


def test_the_first_user_brings_it_up_and_the_last_takes_it_down() -> None:
    cluster = _FakeCluster(up=False)
    with _use(cluster):
        with _use(cluster):  # a second process of the run (the same pid here)
            pass
        assert cluster.running, "the first user still uses it"
    assert (cluster.ups, cluster.downs) == (1, 1)


def test_a_cluster_up_before_the_run_or_kept_is_left_up() -> None:
    cluster = _FakeCluster(up=True)
    with _use(cluster):
        pass
    assert cluster.running and cluster.downs == 0
    cluster = _FakeCluster(up=False)
    with _use(cluster, keep=True):
        pass
    assert cluster.running and cluster.downs == 0


def test_a_user_that_died_without_leaving_does_not_keep_it_up() -> None:
    cluster = _FakeCluster(up=False)
    with _use(cluster):
        record = Path(os.environ["LEPTON_E2E_HOME"] + "-locks") / "users.json"
        text = record.read_text().replace("[", "[999999999, ", 1)  # no such process
        record.write_text(text)
    assert cluster.downs == 1


def _fixed_namespaces(module: Path) -> list[str]:
    """The literal namespace names a module sets at its top (``NAMESPACE = "..."``)."""
    tree = ast.parse(module.read_text())
    return [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and any(isinstance(t, ast.Name) and t.id in ("NAMESPACE", "MODELS") for t in node.targets)
    ]


def test_every_fixed_namespace_of_a_module_is_watched_by_its_lanes_operator() -> None:
    """A module moved to the other lane with a literal namespace would go unwatched, and
    the other lane's teardown would delete its models."""
    fixed = {path.name: _fixed_namespaces(path) for path in E2E_TESTS.glob("test_*.py")}
    assert fixed["test_advisory.py"] == ["advisory-e2e"]  # the scan finds them
    for name, namespaces in fixed.items():
        lane = lane_of(name)
        for namespace in namespaces:
            assert watches(namespace, lane.watch), (name, namespace, lane.name)
            assert not any(watches(namespace, o.watch) for o in (LANE_A, LANE_B) if o != lane)
