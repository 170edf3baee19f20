"""One timing method for every variant, so their figures compare.

Warm-up first (lazy initialisation and allocator growth must not count), then timed
iterations until both a minimum count and a time budget are reached, so p95 rests
on enough samples and a slow variant still ends. Latency is wall time per call; the
throughput a replica can give is batch size over mean latency.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Budget:
    warmup: int = 3
    min_iterations: int = 20
    seconds: float = 2.0
    max_iterations: int = 10_000


@dataclass(frozen=True)
class Profile:
    batch_size: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    throughput_rps: float
    iterations: int
    peak_memory_bytes: int

    def as_report(self) -> dict[str, float | int]:
        return {
            "batchSize": self.batch_size,
            "p50Ms": self.p50_ms,
            "p95Ms": self.p95_ms,
            "p99Ms": self.p99_ms,
            "throughputRps": self.throughput_rps,
            "iterations": self.iterations,
            "peakMemoryBytes": self.peak_memory_bytes,
        }


def peak_rss_bytes() -> int:
    """The process's resident high-water mark (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory_reader(device: str) -> Callable[[], int]:
    """What bounds a replica's memory on ``device``, from now on: the GPU's allocated
    high-water mark on CUDA (the host's RSS says little of what fits on the card), the
    process's RSS on the CPU."""
    if device != "cuda":
        return peak_rss_bytes
    import torch

    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.max_memory_allocated


def profile(
    call: Callable[[], object],
    batch_size: int,
    budget: Budget,
    peak_memory: Callable[[], int] = peak_rss_bytes,
    clock: Callable[[], float] = time.perf_counter,
) -> Profile:
    for _ in range(budget.warmup):
        call()
    samples: list[float] = []
    started = clock()
    while len(samples) < budget.max_iterations and (
        len(samples) < budget.min_iterations or clock() - started < budget.seconds
    ):
        before = clock()
        call()
        samples.append(clock() - before)
    ms = np.asarray(samples) * 1000.0
    mean_s = float(np.mean(samples))
    return Profile(
        batch_size=batch_size,
        p50_ms=round(float(np.percentile(ms, 50)), 3),
        p95_ms=round(float(np.percentile(ms, 95)), 3),
        p99_ms=round(float(np.percentile(ms, 99)), 3),
        throughput_rps=round(batch_size / mean_s, 3) if mean_s > 0 else 0.0,
        iterations=len(samples),
        peak_memory_bytes=peak_memory(),
    )
