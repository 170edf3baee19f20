"""The keyed work queue: coalescing, one pass per key at a time, requeue and back-off."""

from __future__ import annotations

import asyncio

import pytest

from lepton_operator.workqueue import AHEAD, NORMAL, URGENT, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _take_all_due(queue: WorkQueue[str]) -> list[str]:
    taken = []
    while True:
        key, _ = queue._pop_due()
        if key is None:
            return taken
        taken.append(key)


def test_changes_to_one_key_coalesce_into_one_pass() -> None:
    queue: WorkQueue[str] = WorkQueue(Clock())
    for _ in range(50):
        queue.add("ns/a")
    queue.add("ns/b")
    assert len(queue) == 2
    assert _take_all_due(queue) == ["ns/a", "ns/b"]
    assert _take_all_due(queue) == []


def test_a_key_added_during_its_pass_waits_for_the_pass_to_end() -> None:
    queue: WorkQueue[str] = WorkQueue(Clock())
    queue.add("ns/a")
    assert _take_all_due(queue) == ["ns/a"]
    queue.add("ns/a")  # a watch event arrives while the pass runs
    assert _take_all_due(queue) == []  # never two passes of one model at once
    queue.done("ns/a")
    assert _take_all_due(queue) == ["ns/a"]


def test_requeue_after_and_the_earliest_request_wins() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    queue.add("ns/a")
    _take_all_due(queue)
    queue.done("ns/a", requeue_after_s=30.0)
    clock.now += 29.0
    assert _take_all_due(queue) == []
    queue.add("ns/a", after_s=60.0)  # later: does not delay the pass asked for
    clock.now += 1.0
    assert _take_all_due(queue) == ["ns/a"]
    queue.done("ns/a")
    queue.add("ns/a", after_s=60.0)
    queue.add("ns/a", after_s=5.0)  # earlier: replaces it
    clock.now += 5.0
    assert _take_all_due(queue) == ["ns/a"]


def test_failures_back_off_exponentially_per_key_and_a_success_resets() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock, base_backoff_s=1.0, max_backoff_s=8.0)
    delays = []
    queue.add("ns/a")
    for _ in range(5):
        (key,) = _take_all_due(queue)
        delays.append(queue.done(key, failed=True))
        clock.now += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    queue.add("ns/b")
    assert _take_all_due(queue) == ["ns/a", "ns/b"]  # another key is not slowed
    queue.done("ns/a")
    assert queue.failures("ns/a") == 0


def test_a_change_during_a_failed_pass_still_waits_out_the_back_off() -> None:
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock, base_backoff_s=4.0)
    queue.add("ns/a")
    _take_all_due(queue)
    queue.add("ns/a")
    queue.done("ns/a", failed=True)
    assert _take_all_due(queue) == []
    clock.now += 4.0
    assert _take_all_due(queue) == ["ns/a"]


def test_forget_drops_a_deleted_models_pending_pass() -> None:
    queue: WorkQueue[str] = WorkQueue(Clock())
    queue.add("ns/a", after_s=10.0)
    queue.forget("ns/a")
    assert len(queue) == 0 and _take_all_due(queue) == []


def test_get_waits_for_the_due_time_on_the_event_loop() -> None:
    async def scenario() -> list[str]:
        queue: WorkQueue[str] = WorkQueue(base_backoff_s=0.01)
        queue.add("late", after_s=0.2)
        queue.add("soon", after_s=0.05)
        first = await asyncio.wait_for(queue.get(), timeout=2)
        queue.done(first)
        second = await asyncio.wait_for(queue.get(), timeout=2)
        return [first, second]

    assert asyncio.run(scenario()) == ["soon", "late"]


def test_get_wakes_for_a_key_added_while_it_waits() -> None:
    async def scenario() -> str:
        queue: WorkQueue[str] = WorkQueue()
        waiter = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        queue.add("ns/a")
        return await asyncio.wait_for(waiter, timeout=2)

    assert asyncio.run(scenario()) == "ns/a"


@pytest.mark.parametrize("workers", [1, 4])
def test_workers_never_hold_one_key_twice(workers: int) -> None:
    async def scenario() -> int:
        queue: WorkQueue[str] = WorkQueue()
        running: set[str] = set()
        overlaps = 0
        passes = 0

        async def worker() -> None:
            nonlocal overlaps, passes
            while True:
                key = await queue.get()
                overlaps += key in running
                running.add(key)
                await asyncio.sleep(0.001)
                running.discard(key)
                passes += 1
                queue.done(key)

        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        for i in range(200):
            queue.add(f"m{i % 5}")
            await asyncio.sleep(0)
        while len(queue) or queue.processing():
            await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        assert passes < 200  # coalesced
        return overlaps

    assert asyncio.run(scenario()) == 0


def test_news_of_work_under_way_goes_ahead_of_first_passes() -> None:
    """A thousand models applied at once must not queue a finished build behind them."""
    clock = Clock()
    queue: WorkQueue[str] = WorkQueue(clock)
    for n in range(5):
        queue.add(f"ns/new-{n}")
    queue.add("ns/new-3", lane=AHEAD)  # its build finished: moved ahead, once
    queue.add("ns/built", lane=AHEAD)
    queue.add("ns/later", 5.0, lane=AHEAD)  # not due yet: the normal lane goes on
    assert len(queue) == 7
    assert _take_all_due(queue) == [
        "ns/new-3",
        "ns/built",
        "ns/new-0",
        "ns/new-1",
        "ns/new-2",
        "ns/new-4",
    ]
    clock.now += 5.0
    queue.add("ns/new-5")
    assert _take_all_due(queue) == ["ns/later", "ns/new-5"]
    # News during a pass keeps its lane for the pass that follows.
    queue.add("ns/a")
    assert _take_all_due(queue) == ["ns/a"]
    queue.add("ns/a", lane=AHEAD)
    queue.add("ns/b")
    queue.done("ns/a")
    assert _take_all_due(queue) == ["ns/a", "ns/b"]


def test_the_wait_for_a_worker_is_heard_per_lane_from_the_due_time() -> None:
    clock = Clock()
    heard: list[tuple[int, float]] = []
    queue: WorkQueue[str] = WorkQueue(clock, on_take=lambda lane, s: heard.append((lane, s)))
    queue.add("ns/first")  # a first pass, due now
    queue.add("ns/later", after_s=10.0)  # asked for in 10 s: that wait is not the queue's
    clock.now += 3.0
    queue.add("ns/report", lane=AHEAD)
    clock.now += 1.0
    assert _take_all_due(queue) == ["ns/report", "ns/first"]
    assert heard == [(AHEAD, 1.0), (NORMAL, 4.0)]
    clock.now += 8.0
    assert _take_all_due(queue) == ["ns/later"]
    assert heard[-1] == (NORMAL, 2.0)


def test_a_worker_kept_for_news_takes_only_the_ahead_lane() -> None:
    """While every other worker runs first passes, a kept worker still takes a build's
    report at once, and never a first pass."""

    async def scenario() -> tuple[bool, str, str]:
        queue: WorkQueue[str] = WorkQueue()
        kept = asyncio.ensure_future(queue.get((AHEAD,)))
        queue.add("ns/first")
        await asyncio.sleep(0.05)
        ignored_first_pass = not kept.done()
        queue.add("ns/report", lane=AHEAD)
        report = await asyncio.wait_for(kept, timeout=2)
        first = await asyncio.wait_for(queue.get(), timeout=2)
        return ignored_first_pass, report, first

    assert asyncio.run(scenario()) == (True, "ns/report", "ns/first")


def test_a_finished_build_goes_before_a_rollouts_progress_and_both_before_first_passes() -> None:
    queue: WorkQueue[str] = WorkQueue(Clock())
    queue.add("ns/new")
    queue.add("ns/pod-ready", lane=AHEAD)
    queue.add("ns/report", lane=URGENT)
    queue.add("ns/pod-ready", lane=URGENT)  # then its canary verdict: moved up, once
    queue.add("ns/other-pod", lane=AHEAD)
    assert _take_all_due(queue) == ["ns/report", "ns/pod-ready", "ns/other-pod", "ns/new"]
