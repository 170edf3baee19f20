"""What the observed p95 teaches the capacity model: its latency and its throughput.

The capacity model (``capacity``) predicts a replica's p95 from two profiled numbers,
a lone request's p95 and the most a replica serves; either can be off on a real
cluster (Triton's own overhead and a shared CPU slow a lone request; another node type
or contention changes what a replica serves). The planner corrects both from the p95
it observes, with two scales fitted jointly in log space:

- the **latency** scale ``k`` (``PlanInput.correction``) multiplies every predicted
  p95 of the pool serving now, as it always has;
- the **throughput** scale ``s`` of each pool multiplies its replicas' most req/s
  (``Capacity.max_rps``), so the queueing curve itself moves: what a replica serves
  within the SLO, not only how slow it is.

One reading, a p95 at a rate over some replicas, cannot tell the two apart by itself;
how it moves each depends on how sensitive the prediction is to it there. A nearly
idle replica's p95 is its lone request's (``k``); near its capacity the queue
dominates and ``s`` moves it most (the elasticity of the queueing term to ``s`` is
``1 + 1 / (1 - rho)``). A Kalman filter over ``(ln k, ln s)`` weighs each reading by
that sensitivity and by how well each scale is known already: ``k``, read at every
load, is known well (its gain is the 0.3 of the moving average it replaces);
``s`` starts uncertain (``THROUGHPUT_PRIOR_SD``, the profile's throughput is the M/M/1
curve's weak part) and is learned from the readings where the replicas queue, then
kept through quiet hours that say nothing about it (their readings barely move it).
Without it a model 20% pessimistic about throughput paid for a replica more than
needed all day: the corrected p95 at half load fitted a lower ``k``, which hardly moves
what a replica serves at the SLO (``holding.served_rps``).

Each pool's ``ln s`` keeps its variance and its covariance with ``ln k`` (one reading
moves both); the pools' scales are kept independent of each other.

**What is credited is what was seen** (``credited``): the curve's shape is the model's
guess, so a throughput above the profile's is credited only up to ``EXTRAPOLATION``
beyond the most a replica of the pool was seen to serve within the SLO (``Scale.proven``,
as a multiple of what its profile serves there). A replica on two shared cores answered
20 req/s at 32 ms where the M/M/1 curve said 47, so the filter read x1.3 its profile and
the planner kept one replica to 40 req/s (the curve: 59 ms); it served 40 at 35 ms and
46 at over 100 (its knee is sharper than the curve's), and the step to 50 queued for
the seconds a second replica took to start. A lower throughput than profiled is credited
at once: the readings that taught it were slow. So the status holds four numbers per
pool. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from lepton_operator.planning.capacity import P95_TAIL, Capacity
from lepton_operator.planning.holding import served_rps

LATENCY_BOUNDS = (0.5, 4.0)  # of k, and of one reading's observed / predicted p95
THROUGHPUT_BOUNDS = (0.5, 2.0)  # of s
# Readings whose predicted p95 is less queueing than this teach no throughput (``learn``).
MIN_QUEUEING_SHARE = 0.1
# The p95's own noise from one reading to the next, as a log: about 15%.
READING_VARIANCE = 0.15**2
# k's variance in its steady state, where a reading moves it by LATENCY_GAIN of its error
# (the moving average's weight it replaces), and the drift per reading that keeps it so.
LATENCY_GAIN = 0.3
LATENCY_VARIANCE = READING_VARIANCE * LATENCY_GAIN / (1.0 - LATENCY_GAIN)
DRIFT_VARIANCE = LATENCY_GAIN * LATENCY_VARIANCE
# s drifts far slower: what a replica serves changes with its hardware, not from one
# minute to the next; at k's drift the noise of readings with little queueing in them
# walked an L4's s by 16% and a noisy plateau missed the SLO in 2% of minutes.
THROUGHPUT_DRIFT_VARIANCE = 0.01**2
# s before any reading: within a factor of about 1.5 either way.
THROUGHPUT_PRIOR_SD = math.log(1.5)
THROUGHPUT_VARIANCE = THROUGHPUT_PRIOR_SD**2
# How far beyond the most a replica was seen to serve within the SLO a learned throughput
# above the profile's is credited (``credited``): a quarter more than was seen, so a
# planner that uses what it was credited is credited more at the next reading.
EXTRAPOLATION = 0.25


@dataclass(frozen=True)
class Scale:
    """One fitted scale and the variance of its log."""

    value: float = 1.0
    variance: float = THROUGHPUT_VARIANCE
    covariance: float = 0.0  # of ln s with ln k (the throughput scale of the pool serving)
    # The most a replica of the pool was seen to serve within the SLO, as a multiple of
    # what its profile serves there (0: never seen): what ``credited`` extrapolates from.
    proven: float = 0.0


@dataclass(frozen=True)
class Fit:
    """What the readings taught: the latency scale ``k`` (of the pool serving) and the
    throughput scale of each pool seen serving."""

    latency: Scale = Scale(1.0, LATENCY_VARIANCE)
    throughput: Mapping[str, Scale] = field(default_factory=dict)

    def scale(self, pool: str) -> float:
        """The pool's learned throughput scale (1 where it never served)."""
        found = self.throughput.get(pool)
        return found.value if found else 1.0

    def credited(self, capacity: Capacity, slo_ms: float) -> float:
        """The throughput scale the planner sizes ``capacity`` with (``credited``)."""
        found = self.throughput.get(capacity.pool)
        return credited(found, capacity, slo_ms, self.latency.value) if found else 1.0


def scaled(capacity: Capacity, throughput: float) -> Capacity:
    """``capacity`` serving ``throughput`` times its profiled req/s (``unscaled`` undoes
    it)."""
    if throughput == 1.0:
        return capacity
    return replace(
        capacity,
        max_rps=capacity.max_rps * throughput,
        throughput_scale=capacity.throughput_scale * throughput,
    )


def unscaled(capacity: Capacity) -> Capacity:
    """``capacity`` as profiled, whatever scale it was given (``scaled``)."""
    return scaled(capacity, 1.0 / capacity.throughput_scale)


def credited(scale: Scale, capacity: Capacity, slo_ms: float, latency: float) -> float:
    """``scale.value``, but where it is above 1 at most the scale whose replica serves,
    within ``slo_ms`` at the latency scale ``latency``, ``1 + EXTRAPOLATION`` times the
    most one was seen to (``scale.proven``) and never below the profile's 1.

    What a replica serves within the SLO at scale ``s`` over what it serves at 1
    (``holding.served_rps``) is ``s^2 (1 + c) / (1 + c s)``, ``c`` the SLO's room over a
    lone request in queueing tails of one profiled service time; solved for ``s``."""
    room = slo_ms / latency - capacity.base_p95_ms
    if scale.value <= 1.0 or room <= 0 or capacity.max_rps <= 0:
        return scale.value  # slower, or nothing is served within the SLO: nothing to bound
    limit = (1.0 + EXTRAPOLATION) * scale.proven
    if limit <= 1.0:
        return 1.0
    c = room * capacity.max_rps / (P95_TAIL * 1000.0)
    bound = (limit * c + math.sqrt((limit * c) ** 2 + 4.0 * (1.0 + c) * limit)) / (2.0 * (1.0 + c))
    return min(scale.value, bound)


def queueing_share(capacity: Capacity, rate_rps: float, replicas: int) -> float:
    """The queueing term's share of the predicted p95 (0 idle, towards 1 near capacity;
    1 when it cannot keep up)."""
    if rate_rps <= 0 or replicas <= 0 or capacity.max_rps <= 0:
        return 0.0
    rho = rate_rps / (replicas * capacity.max_rps)
    if rho >= 1.0:
        return 1.0
    queueing = P95_TAIL * (1000.0 / capacity.max_rps) * rho / (1.0 - rho)
    return queueing / (capacity.base_p95_ms + queueing)


def throughput_sensitivity(
    capacity: Capacity, rate_rps: float, replicas: int, latency: float = 1.0
) -> float:
    """d ln p95 / d ln s at this reading (<= 0; 0 without queueing): the queueing
    term's share of the p95 times its elasticity, ``1 + 1 / (1 - rho)``."""
    rho = rate_rps / (replicas * capacity.max_rps) if replicas > 0 and capacity.max_rps > 0 else 0
    if rate_rps <= 0 or rho <= 0 or rho >= 1.0:
        return 0.0
    return -queueing_share(capacity, rate_rps, replicas) * (1.0 + 1.0 / (1.0 - rho))


def learn(
    fit: Fit,
    capacity: Capacity,
    rate_rps: float,
    replicas: int,
    observed_p95_ms: float,
    *,
    slo_ms: float | None = None,
) -> Fit:
    """``fit`` after one reading: ``observed_p95_ms`` at ``rate_rps`` over ``replicas``
    of ``capacity`` (as profiled; its pool's scale is applied here). The scales are
    unchanged when the prediction is unbounded (the model says overloaded: no curve to
    fit); nothing changes without load. With ``slo_ms``, a reading within it also
    records what a replica was seen to serve (``Scale.proven``), overloaded or not."""
    if rate_rps <= 0 or replicas <= 0 or not observed_p95_ms > 0:
        return fit
    fitted = _filtered(fit, capacity, rate_rps, replicas, observed_p95_ms)
    if slo_ms is None or observed_p95_ms > slo_ms:
        return fitted
    profiled = served_rps(capacity, 1, slo_ms, fitted.latency.value)
    if profiled <= 0:
        return fitted
    mine = fitted.throughput.get(capacity.pool, Scale())
    seen = max(mine.proven, round(rate_rps / replicas / profiled, 4))
    if seen == mine.proven:
        return fitted
    return replace(
        fitted, throughput={**fitted.throughput, capacity.pool: replace(mine, proven=seen)}
    )


def _filtered(
    fit: Fit, capacity: Capacity, rate_rps: float, replicas: int, observed_p95_ms: float
) -> Fit:
    """The Kalman update of ``learn``: the scales after one reading."""
    pool = capacity.pool
    k, s = fit.latency, fit.throughput.get(pool, Scale())
    model = scaled(capacity, s.value)
    predicted = model.p95_ms(rate_rps, replicas, k.value)
    if not math.isfinite(predicted) or predicted <= 0:
        return fit
    low, high = LATENCY_BOUNDS
    error = math.log(min(max(observed_p95_ms / predicted, low), high))
    j_s = throughput_sensitivity(model, rate_rps, replicas, k.value)
    if queueing_share(model, rate_rps, replicas) < MIN_QUEUEING_SHARE:
        # Nearly idle: the reading's error is the lone request's; read as throughput,
        # a lone request 1.5x slow lowered s by a fifth in twenty readings.
        j_s = 0.0
    # A Kalman update over (ln k, ln s of each pool), the reading's sensitivity
    # H = (1, j_s) to (k, this pool's s): P H^T, the innovation's variance, the gains.
    pk = k.variance + s.covariance * j_s
    ps = s.covariance + s.variance * j_s
    innovation = pk + ps * j_s + READING_VARIANCE
    gain_k = pk / innovation
    latency = Scale(
        round(_bounded(k.value * math.exp(gain_k * error), LATENCY_BOUNDS), 4),
        # Drift grows what readings at one load cannot tell apart: at most the prior.
        min(k.variance - gain_k * pk + DRIFT_VARIANCE, THROUGHPUT_VARIANCE),
    )
    learned = {}
    for name, other in {**fit.throughput, pool: s}.items():
        # Another pool's s is tied to k by what it taught k while it served (their
        # covariance): learning k moves it too (pools' covariance with one another is
        # not kept).
        mine = name == pool
        p_here = ps if mine else other.covariance
        gain = p_here / innovation
        variance = other.variance - gain * p_here + (THROUGHPUT_DRIFT_VARIANCE if mine else 0.0)
        learned[name] = _within(
            Scale(
                round(_bounded(other.value * math.exp(gain * error), THROUGHPUT_BOUNDS), 4),
                variance,
                other.covariance - gain * pk,
                other.proven,
            ),
            latency.variance,
        )
    return Fit(latency, learned)


def _within(scale: Scale, latency_variance: float) -> Scale:
    """Variances at most the prior's, and a covariance they allow (the matrix stays
    positive definite)."""
    variance = min(max(scale.variance, 1e-6), THROUGHPUT_VARIANCE)
    bound = 0.99 * math.sqrt(variance * latency_variance)
    return replace(scale, variance=variance, covariance=min(max(scale.covariance, -bound), bound))


def _bounded(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])
