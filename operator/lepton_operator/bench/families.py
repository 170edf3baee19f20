"""Generated load traces in families, each drawn with a seed, for the replay benchmark.

Why families: a setting tuned to one trace learns that trace; the planner and its
peers are compared, and the two-pool rule tuned, over several draws of each shape.
The shapes are the ones the planner has missed on (issue 25), placed around the
shipped MiniLM pools' regimes: one CPU replica holds about 25 req/s within a 100 ms
SLO and one L4 about 4,900, and two or three CPU replicas cost what one L4 does, so
the CPU/GPU break-even sits near 60 req/s.

- ``bursty``: a quiet base that jumps tenfold within a minute several times an hour,
  for 2 to 15 minutes, at two scales (the bursts on CPUs or needing GPUs);
- ``plateau``: a noisy plateau (10% noise) just under and just over one replica's
  capacity, of a CPU and of an L4;
- ``steps``: levels held 30 to 180 minutes, each drawn across both regimes;
- ``diurnal``: a day's cycle peaking at 30, 60, 120 and 600 req/s, around the
  break-even, with 10% noise.

Deterministic: ``random.Random(seed)`` per trace, rates rounded to 0.01 req/s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

DAY = 24 * 60
SEEDS = (1, 2)


@dataclass(frozen=True)
class Trace:
    family: str
    name: str
    seed: int
    rates: list[float]


def _noisy(rng: random.Random, value: float, sigma: float) -> float:
    return round(max(0.0, value * math.exp(rng.gauss(0.0, sigma))), 2)


def bursty(rng: random.Random, base: float) -> list[float]:
    """``base`` req/s, and about four times an hour ten times that for 2 to 15 minutes."""
    rates = [base] * DAY
    minute = rng.randrange(5, 20)
    while minute < DAY:
        length = rng.randint(2, 15)
        for m in range(minute, min(DAY, minute + length)):
            rates[m] = base * 10
        minute += length + rng.randrange(5, 25)
    return [_noisy(rng, r, 0.05) for r in rates]


def plateau(rng: random.Random, level: float) -> list[float]:
    """``level`` req/s with 10% noise all day, after an hour at a tenth of it."""
    return [_noisy(rng, level if m >= 60 else level / 10, 0.10) for m in range(DAY)]


def steps(rng: random.Random, scale: float) -> list[float]:
    """Levels held 30 to 180 minutes, drawn log-uniformly from ``scale``/300 to ``scale``."""
    rates: list[float] = []
    while len(rates) < DAY:
        level = scale * 10 ** rng.uniform(-2.5, 0.0)
        rates.extend([level] * rng.randint(30, 180))
    return [_noisy(rng, r, 0.05) for r in rates[:DAY]]


def diurnal(rng: random.Random, peak: float) -> list[float]:
    """A trough of 2% of ``peak`` at 02:00, ``peak`` at 14:00, 10% noise."""
    out = []
    for m in range(DAY):
        shape = (1 - math.cos(2 * math.pi * (m - 120) / DAY)) / 2
        out.append(_noisy(rng, peak * (0.02 + 0.98 * shape**2), 0.10))
    return out


# family -> (label, generator) for each member; each is drawn once per seed.
FAMILIES: dict[str, list[tuple[str, Callable[[random.Random], list[float]]]]] = {
    "bursty": [
        ("bursty-cpu", lambda rng: bursty(rng, 8.0)),
        ("bursty-gpu", lambda rng: bursty(rng, 400.0)),
    ],
    "plateau": [
        ("plateau-cpu", lambda rng: plateau(rng, 26.0)),
        ("plateau-gpu-under", lambda rng: plateau(rng, 4_500.0)),
        ("plateau-gpu-over", lambda rng: plateau(rng, 5_300.0)),
    ],
    "steps": [("steps", lambda rng: steps(rng, 6_000.0))],
    "diurnal": [
        (f"diurnal-{peak}", partial(diurnal, peak=float(peak))) for peak in (30, 60, 120, 600)
    ],
}


def traces(seeds: tuple[int, ...] = SEEDS) -> list[Trace]:
    """Every member of every family, once per seed (the seed mixed with the member's
    position so two members never share a draw)."""
    out = []
    for family, members in FAMILIES.items():
        for index, (label, generate) in enumerate(members):
            for seed in seeds:
                rng = random.Random(f"{label}:{seed}:{index}")
                out.append(Trace(family, f"{label}-s{seed}", seed, generate(rng)))
    return out
