"""From a build report to the status table: one row per (variant, pool)."""

from __future__ import annotations

from lepton_operator.api.spec import PoolSpec
from lepton_operator.api.status import VariantStatus
from lepton_operator.report import BuildReport, Profile, VariantReport

SECONDS_PER_HOUR = 3600


def cost_per_1k(hourly_price_usd: float, throughput_rps: float) -> float | None:
    """Cost of 1,000 inferences on one replica kept busy: price / inferences per hour."""
    if throughput_rps <= 0:
        return None
    return hourly_price_usd / (throughput_rps * SECONDS_PER_HOUR) * 1000


def best_profile(profiles: list[Profile], slo_p95_ms: float) -> Profile | None:
    """The batch size with the highest throughput whose p95 still meets the SLO,
    else the lowest-latency one (so the table shows how far off it is)."""
    if not profiles:
        return None
    meeting = [p for p in profiles if p.p95_ms <= slo_p95_ms]
    if meeting:
        return max(meeting, key=lambda p: (p.throughput_rps, -p.batch_size))
    return min(profiles, key=lambda p: (p.p95_ms, p.batch_size))


def variant_rows(report: BuildReport, pool: PoolSpec, slo_p95_ms: float) -> list[VariantStatus]:
    rows = []
    for variant in report.variants:
        # The figures the planner sizes with (the search's, served on Triton, when it
        # ran), so the first plan, made from these rows before any traffic, agrees with
        # every later one.
        profile = best_profile(variant.capacity_profiles, slo_p95_ms)
        accepted = variant.status == "accepted" and profile is not None
        reason = variant.reason or ("" if accepted else f"{variant.status} without a profile")
        rows.append(
            _rounded(
                VariantStatus(
                    variant=variant.name,
                    pool=pool.name,
                    batch_size=profile.batch_size if profile else 1,
                    p50_ms=profile.p50_ms if profile else None,
                    p95_ms=profile.p95_ms if profile else None,
                    p99_ms=profile.p99_ms if profile else None,
                    throughput_rps=profile.throughput_rps if profile else None,
                    accuracy=variant.accuracy,
                    size_bytes=variant.size_bytes,
                    load_seconds=variant.load_seconds,
                    cost_per_1k_usd=cost_per_1k(pool.hourly_price_usd, profile.throughput_rps)
                    if profile
                    else None,
                    accepted=accepted,
                    reason="" if accepted else reason,
                    serving_config=_search_summary(variant),
                )
            )
        )
    return rows


def _search_summary(variant: VariantReport) -> str | None:
    search = variant.serving_search
    if search is None:
        return None
    return search.summary or (f"search skipped: {search.skipped}" if search.skipped else None)


def _rounded(row: VariantStatus) -> VariantStatus:
    """Figures as a person reads them: ms to the microsecond, cost to 4 significant digits."""
    update = {
        name: round(value, 3)
        for name in ("p50_ms", "p95_ms", "p99_ms", "throughput_rps")
        if (value := getattr(row, name)) is not None
    }
    if row.cost_per_1k_usd is not None:
        update["cost_per_1k_usd"] = float(f"{row.cost_per_1k_usd:.4g}")
    return row.model_copy(update=update)
