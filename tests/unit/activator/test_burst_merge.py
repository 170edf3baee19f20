"""Each activator replica holds its part of a burst; the report on the LeptonModel
(``lepton.ai/activator-wait``, read into ``status.activation.lastBurst``) is the whole
burst: parts of the same burst merged, earlier bursts dropped, races retried."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from lepton_activator.holding import KEPT_WAITS, ReplicaBurst, merge_burst, replica_bursts
from lepton_activator.kube import Conflict
from lepton_activator.server import KubeOperator


def _part(instance: str, since: float, at: float, waits: list[float], **kw: int) -> ReplicaBurst:
    return ReplicaBurst(instance, since, at, tuple(waits), **kw)


def test_the_first_part_is_the_report_and_keeps_itself_for_the_next() -> None:
    merged = merge_burst(None, _part("a", 100.0, 103.0, [2700.0, 2900.0], refused=1))
    assert (merged["held"], merged["replicas"], merged["refused"]) == (2, 1, 1)
    assert (merged["p50Ms"], merged["maxMs"], merged["at"]) == (2700.0, 2900.0, 103.0)
    [again] = replica_bursts(json.dumps(merged))
    assert again == _part("a", 100.0, 103.0, [2700.0, 2900.0], refused=1, held=2)


def test_two_replicas_halves_of_one_burst_are_one_report() -> None:
    first = merge_burst(None, _part("a", 100.0, 102.9, [2750.0] * 10))
    both = merge_burst(
        json.dumps(first), _part("b", 100.0, 103.0, [2700.0] * 9 + [2880.0], timed_out=1)
    )
    assert (both["held"], both["replicas"], both["timedOut"]) == (20, 2, 1)
    assert both["p50Ms"] == 2750.0 and both["maxMs"] == 2880.0 and both["at"] == 103.0
    assert set(both["parts"]) == {"a", "b"}
    # The same replica's next burst replaces its own part, and an earlier burst's
    # parts of the other replica are dropped.
    later = merge_burst(json.dumps(both), _part("a", 500.0, 502.0, [1500.0]))
    assert (later["held"], later["replicas"], set(later["parts"])) == (1, 1, {"a"})


def test_unreadable_or_older_reports_merge_as_nothing() -> None:
    mine = _part("a", 10.0, 11.0, [900.0])
    for old in ["", "not json", '{"held": 3, "p50Ms": 1}', '{"parts": {"b": {"at": "x"}}}']:
        assert merge_burst(old, mine)["replicas"] == 1, old


def test_a_long_burst_keeps_a_sample_of_its_waits_but_counts_them_all() -> None:
    many = _part("a", 0.0, 60.0, [float(i) for i in range(3 * KEPT_WAITS)])
    stored = json.loads(json.dumps(merge_burst(None, many)))
    assert stored["held"] == 3 * KEPT_WAITS
    assert len(stored["parts"]["a"]["waitsMs"]) == KEPT_WAITS
    merged = merge_burst(json.dumps(stored), _part("b", 1.0, 59.0, [5.0]))
    assert merged["held"] == 3 * KEPT_WAITS + 1


class RacingKube:
    """The other replica writes between our read and our write, once."""

    def __init__(self) -> None:
        self.annotations: dict[str, str] = {}
        self.version = 1
        self.raced = False

    async def model_annotations(self, namespace: str, name: str) -> tuple[dict[str, str], str]:
        return dict(self.annotations), str(self.version)

    async def patch_annotations(
        self, namespace: str, name: str, values: dict[str, str], version: str | None = None
    ) -> None:
        if not self.raced:
            self.raced = True
            other = _part("b", 100.0, 103.0, [2800.0] * 10)
            self.annotations["lepton.ai/activator-wait"] = json.dumps(merge_burst(None, other))
            self.version += 1
        if version != str(self.version):
            raise Conflict(name)
        self.annotations.update(values)
        self.version += 1


def test_a_report_that_lost_a_race_reads_again_and_merges() -> None:
    kube: Any = RacingKube()
    part = _part("a", 100.0, 102.9, [2750.0] * 10)
    asyncio.run(KubeOperator(kube).report(("ml", "digits"), part))
    report = json.loads(kube.annotations["lepton.ai/activator-wait"])
    assert (report["held"], report["replicas"]) == (20, 2)
