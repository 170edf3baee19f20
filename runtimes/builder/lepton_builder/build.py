"""One build: every variant built, guarded, profiled and written, or reported failed.

A variant that fails to build, breaks the accuracy guard or fails while profiling is
a row in the report with its reason, never a crashed Job: the report is the truth
about each variant, and the operator decides from it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lepton_builder import buildcache, calibration, canary, cpu, tritonrepo
from lepton_builder.accuracy import Usage, Verdict, judge
from lepton_builder.loading import SOURCES_ROOT, LoadedModel, load_model, local_source
from lepton_builder.loadtime import load_seconds
from lepton_builder.profiling import Budget, peak_memory_reader, profile
from lepton_builder.request import BuildRequest
from lepton_builder.selection import Choice, choose_variants
from lepton_builder.servingsearch import SearchSettings, find_server, run_search, server_backends
from lepton_builder.tuning import ServingConfig
from lepton_builder.variants import Arrays, Built, Compression, Variants

log = logging.getLogger("lepton_builder")
REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Settings:
    budget: Budget = field(default_factory=Budget)
    # Generated: 64, so a trained or calibrated variant is judged on 16 held-out samples.
    calibration_samples: int = 64
    dynamic_dim: int = 128
    threads: int = 0
    sources_root: Path = SOURCES_ROOT
    search_seconds: float = 3.0  # per load level of each configuration tried
    # None: tritonserver on PATH, else the nvidia-pytriton wheel's (servingsearch.find_server).
    tritonserver: str | None = None


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _ort_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _run_batched(run: Any, arrays: Arrays, batch_size: int = 8) -> Arrays:
    outputs: list[list[Any]] = []
    for start in range(0, len(arrays[0]), batch_size):
        result = run([a[start : start + batch_size] for a in arrays])
        if not outputs:
            outputs = [[] for _ in result]
        for slot, value in zip(outputs, result, strict=True):
            slot.append(value)
    return [np.concatenate(slot) for slot in outputs]


def build(request: BuildRequest, settings: Settings = Settings()) -> dict[str, Any]:
    """The build's report, its repository written; a build kept in the request's
    build cache with the same key (``buildcache``) is reused instead of made again."""
    started = time.monotonic()
    source = request.model
    log.info("loading %s model from %s", source.format, source.uri)
    cache = Path(request.source_cache) if request.source_cache else None
    model = load_model(source, settings.sources_root, cache=cache)
    calibration_path = None
    if request.optimization.calibration_uri:
        calibration_path, _ = local_source(
            request.optimization.calibration_uri, sources_root=settings.sources_root, cache=cache
        )
    builds = Path(request.build_cache) if request.build_cache else None
    repository = Path(request.repository)
    key = None
    if builds is not None:
        key = buildcache.build_key(
            decided_by(request, settings), model.path, calibration_path, request.device
        )
        kept = buildcache.reuse(builds, key, repository, request.model_name)
        if kept is not None:
            return buildcache.reused_report(
                kept, key, request.pool, str(repository), time.monotonic() - started
            )
    report = _build(request, settings, model, calibration_path, started)
    if key is not None:
        buildcache.keep(builds, key, repository, report)
    return report


def decided_by(request: BuildRequest, settings: Settings) -> dict[str, Any]:
    """What of the request and the settings decides what a build makes and measures:
    no path, no place's name (the repository, the report ConfigMap, the upload, the
    caches, the pool), not the model's name (``buildcache.reuse`` renames) and no
    source's URI (its bytes count instead, in the key). The
    latency target counts only where the serving search scores at it."""
    fields = request.model_dump(
        mode="json",
        by_alias=True,
        exclude={
            "repository",
            "report_config_map",
            "upload",
            "source_cache",
            "build_cache",
            "pool",
            "model_name",  # the clients' name: a reused build's models are renamed
        },
    )
    fields["model"].pop("uri")
    fields["model"].pop("sha256", None)
    fields["optimization"].pop("calibrationUri", None)
    if not request.optimization.serving_search:
        fields.pop("latencyTargetMs", None)
    measured = dataclasses.asdict(settings)
    measured.pop("sources_root")
    fields["settings"] = measured
    return fields


def _build(
    request: BuildRequest,
    settings: Settings,
    model: LoadedModel,
    calibration_path: Path | None,
    started: float,
) -> dict[str, Any]:
    source = request.model
    labels = None
    if calibration_path is not None:
        path = calibration_path
        inputs = calibration.load(path, source.inputs)
        if request.optimization.accuracy.metric == "label-accuracy":
            labels = calibration.load_labels(
                path, request.optimization.accuracy.labels, len(inputs[0])
            )
    else:
        inputs = calibration.generate(
            source.inputs,
            settings.calibration_samples,
            settings.dynamic_dim,
            vocab=calibration.vocabulary(model.path),
        )
    input_names = [t.name for t in source.inputs]
    output_names = [t.name for t in source.outputs]
    mask_index = next(
        (i for i, t in enumerate(source.inputs) if "attention_mask" in t.name.lower()), None
    )
    choices = choose_variants(
        request.device,
        source.format,
        request.optimization.variants,
        tensorrt_available=_available("tensorrt"),
        ort_cuda_available=_ort_cuda(),
        cpu_bf16_native=cpu.has_native_bf16(),
    )
    repository = Path(request.repository)
    repository.mkdir(parents=True, exist_ok=True)
    accuracy = request.optimization.accuracy
    batch_sizes = sorted(set(request.optimization.batch_sizes))
    mask = None if mask_index is None else inputs[mask_index]
    context = _Context(request, settings, repository, batch_sizes, input_names, output_names)
    compression = Compression(
        inputs,
        request.optimization.training_seconds,
        mask_index,
        generated=not request.optimization.calibration_uri,
    )
    example = calibration.batch(inputs, 1)
    with Variants(
        model, request.device, example, input_names, output_names, settings.threads, compression
    ) as factory:
        rows = _variant_rows(choices, factory, inputs, mask, labels, context)
    report = {
        "schemaVersion": REPORT_SCHEMA_VERSION,
        "pool": request.pool,
        "device": request.device,
        "accuracyMetric": accuracy.metric,
        "guard": guard_report(request, len(inputs[0])),
        "repository": str(repository),
        "buildSeconds": round(time.monotonic() - started, 1),
        "builtAt": buildcache.now(),
        "variants": rows,
    }
    if model.commit:  # what an hf:// revision resolved to, for the record
        report["sourceCommit"] = model.commit
    log.info("summary:\n%s", summary_table(report))
    return report


def _variant_rows(
    choices: list[Choice],
    factory: Variants,
    inputs: Arrays,
    mask: Any,
    labels: Any,
    context: _Context,
) -> list[dict[str, Any]]:
    """Each chosen variant built, judged against fp32 and profiled: its report row (a
    failure is its row with the reason, never the Job's)."""
    request = context.request
    baseline: _Reference | None = None
    rows: list[dict[str, Any]] = []
    for index, choice in enumerate(choices, start=1):
        prefix = f"[{index}/{len(choices)}] {choice.variant}"
        if not choice.build:
            log.info("%s: skipped (%s)", prefix, choice.reason)
            rows.append({"name": choice.variant, "status": "skipped", "reason": choice.reason})
            continue
        variant_started = time.monotonic()
        try:
            log.info("%s: building", prefix)
            built = factory.build(choice.variant)
            outputs = _run_batched(built.run, inputs)
        except Exception as error:
            log.warning("%s: failed: %s", prefix, error)
            rows.append(
                {
                    "name": choice.variant,
                    "status": "failed",
                    "reason": f"{type(error).__name__}: {error}"[:1000],
                }
            )
            continue
        if choice.variant == "fp32":
            baseline = _Reference(outputs, mask, labels)
            factory.guard = functools.partial(_held_out_guard, request, baseline)
        if baseline is None:
            rows.append(
                {
                    "name": choice.variant,
                    "status": "failed",
                    "reason": "the fp32 baseline failed, so accuracy cannot be judged",
                }
            )
            continue
        try:
            row = _judged_row(prefix, choice.variant, built, outputs, baseline, inputs, context)
        except Exception as error:  # any one variant's failure is its row, never the Job's
            log.warning("%s: failed: %s", prefix, error)
            row = {
                "name": choice.variant,
                "status": "failed",
                "reason": f"{type(error).__name__}: {error}"[:1000],
            }
        log.info(
            "%s: %s in %.1f s%s",
            prefix,
            row["status"],
            time.monotonic() - variant_started,
            f" ({row['reason']})" if row.get("reason") else "",
        )
        rows.append(row)
    return rows


@dataclass(frozen=True)
class _Context:
    """What every variant's row is judged, profiled and written with."""

    request: BuildRequest
    settings: Settings
    repository: Path
    batch_sizes: list[int]
    input_names: list[str]
    output_names: list[str]


def _judged_row(
    prefix: str,
    variant: str,
    built: Built,
    outputs: Arrays,
    baseline: _Reference,
    inputs: Arrays,
    ctx: _Context,
) -> dict[str, Any]:
    """A built variant's row: guarded, profiled and, when accepted, written to the
    repository; raises on any failure (the caller makes that the variant's row)."""
    verdict = _guard(ctx.request, baseline, outputs, built.held_out)
    row = _profiled_row(prefix, built, inputs, ctx.batch_sizes, ctx.settings, ctx.request.device)
    row.update(
        accuracy=verdict.value,
        accuracyTail=verdict.tail,
        judgedSamples=verdict.samples,
        sizeBytes=built.size_bytes,
        **built.details,
    )
    if built.held_out is not None:
        row["accuracyJudgedOn"] = f"{len(built.held_out)} calibration samples not trained on"
    if not verdict.accepted:
        row.update(status="rejected", reason=verdict.reason)
    elif row["status"] == "accepted" and built.not_served:
        # Measured beside the others, never offered: what is served must be what was profiled.
        row.update(status="skipped", reason=built.not_served)
    elif row["status"] == "accepted":
        name = ctx.request.model_name  # the same for every variant: clients' one name
        backend = tritonrepo.choose_backend(
            built.runtime,
            ctx.request.serving_backends,
            ctx.request.model.inputs,
            ctx.request.model.outputs,
            built.native_io,
            built.path,
        )
        default = ServingConfig(
            instances=1,
            max_batch_size=max(ctx.batch_sizes),
            preferred_batch_sizes=tuple(_preferred(row["profiles"])),
            max_queue_delay_us=tritonrepo.DEFAULT_QUEUE_DELAY_US,
        )

        def config_for(
            serving: ServingConfig,
            backend: str = backend.name,
            name: str = name,
            built: Built = built,
        ) -> str:
            return tritonrepo.render(
                tritonrepo.model_config(
                    name,
                    ctx.request.model.inputs,
                    ctx.request.model.outputs,
                    ctx.request.device,
                    built.runtime,
                    built.artifact,
                    list(serving.preferred_batch_sizes),
                    serving.max_batch_size,
                    ctx.settings.threads,
                    serving.instances,
                    serving.max_queue_delay_us,
                    backend,
                )
            )

        config = config_for(default)
        sample = [a[:1] for a in inputs]
        # Alone, as a canary request arrives: dynamic quantization scales activations
        # per batch, so a sample's answer inside a batch of 8 differs slightly.
        answer = built.run(sample)
        tritonrepo.write_model(
            tritonrepo.variant_repository(ctx.repository, variant),
            name,
            config,
            built.path,
            built.artifact,
            sample,
            answer,
            [o[:1] for o in baseline.outputs],
            ctx.request.model.inputs,
            ctx.request.model.outputs,
        )
        row["tritonModel"] = name
        row["tritonBackend"] = backend.name
        row["tritonBackendReason"] = backend.reason
        if ctx.request.optimization.serving_search:
            row["servingSearch"] = _serving_search(
                ctx.request,
                tritonrepo.variant_repository(ctx.repository, variant),
                name,
                default,
                config_for,
                dict(zip(ctx.input_names, sample, strict=True)),
                ctx.settings,
                backend.name,
            )
        row["loadSeconds"] = round(
            load_seconds(built.path, built.runtime, ctx.request.device, ctx.settings.threads), 3
        )
        reference = canary.reference(ctx.input_names, sample, ctx.output_names, answer)
        if reference is not None:
            row["canary"] = reference
    return row


def _serving_search(
    request: BuildRequest,
    variant_repository: Path,
    name: str,
    default: ServingConfig,
    config_for: Any,
    sample: dict[str, Any],
    settings: Settings,
    backend: str,
) -> dict[str, Any]:
    """The search's table for the report, or why it did not run; never fails the variant
    (the default configuration stays written).

    The search's server may lack the native backend the variant is served with (the
    builder image's nvidia-pytriton wheel has only the python backend): it then measures
    the same artifact through the python backend, whose extra hop makes the figures a
    conservative bound, says so in the report, and writes the chosen configuration for
    the serving backend."""
    if request.latency_target_ms is None:
        return {"skipped": "the build request carries no latency target to search for"}
    server = find_server(settings.tritonserver)
    if server is None:
        missing = settings.tritonserver or "tritonserver on PATH and no nvidia-pytriton wheel"
        return {"skipped": f"no {missing} in this image to measure on"}
    measured = backend if backend in server_backends(server) else tritonrepo.PYTHON_BACKEND

    def write(serving: ServingConfig, backend: str = measured) -> None:
        tritonrepo.write_configs(variant_repository / name, config_for(serving, backend))

    try:
        first, best, trials = run_search(
            variant_repository,
            name,
            default,
            write,
            sample,
            SearchSettings(
                request.latency_target_ms,
                seconds_per_level=settings.search_seconds,
                server=server,
            ),
        )
    except Exception as error:
        write(default, backend)
        log.warning("serving search failed: %s", error)
        return {"skipped": f"the search failed: {type(error).__name__}: {error}"[:1000]}
    write(best.config, backend)
    return {
        "backend": measured,
        **(
            {}
            if measured == backend
            else {
                "note": f"measured on the {measured} backend: the search's server has no "
                f"{backend} backend, which serves the variant (its figures are a "
                "conservative bound)"
            }
        ),
        "targetP95Ms": request.latency_target_ms,
        "default": first.as_report(),
        "chosen": best.as_report(),
        "summary": f"{best.config.describe()}: {best.capacity_rps:.1f} req/s within "
        f"{request.latency_target_ms:g} ms p95 (default {first.capacity_rps:.1f})",
        "trials": [t.as_report() for t in trials],
    }


@dataclass(frozen=True)
class _Reference:
    """What every variant is judged against: the fp32 baseline's outputs on the
    calibration samples, their attention mask, and their labels (label-accuracy)."""

    outputs: Arrays
    mask: Any = None
    labels: Any = None

    def subset(self, index: Any) -> _Reference:
        def take(array: Any) -> Any:
            return None if array is None else array[index]

        return _Reference([o[index] for o in self.outputs], take(self.mask), take(self.labels))


def _guard(
    request: BuildRequest, baseline: _Reference, outputs: Arrays, held_out: Any | None
) -> Verdict:
    """The accuracy verdict on what clients consume; a variant that learned from the
    calibration inputs is judged only on the samples it never saw."""
    if held_out is not None:
        baseline = baseline.subset(held_out)
        outputs = [o[held_out] for o in outputs]
    accuracy = request.optimization.accuracy
    return judge(
        accuracy.metric,
        accuracy.tolerance,
        baseline.outputs,
        outputs,
        mask=baseline.mask,
        labels=baseline.labels,
        usage=_usage(request),
        tail_tolerance=accuracy.tail_tolerance,
        min_samples=accuracy.min_samples,
    )


def _held_out_guard(
    request: BuildRequest, baseline: _Reference, outputs: Arrays, held_out: Any
) -> Verdict:
    """The guard for outputs computed on the ``held_out`` samples only (static int8's
    fallback tries): the baseline, mask and labels are sliced to match."""
    return _guard(request, baseline.subset(held_out), outputs, None)


def _usage(request: BuildRequest) -> Usage:
    output = request.optimization.accuracy.output
    return Usage(output.pooling, output.normalize)


def guard_report(request: BuildRequest, samples: int) -> dict[str, Any]:
    """What the guard measured and on what, for the report: the statistic, the
    bounds, the count, and whether the inputs were the user's."""
    accuracy = request.optimization.accuracy
    tail = "p95" if accuracy.metric == "max-abs-error" else "p5"
    user = bool(request.optimization.calibration_uri)
    report: dict[str, Any] = {
        "metric": accuracy.metric,
        "statistic": f"mean and {tail} over samples of the per-sample {accuracy.metric} of "
        + _usage(request).describe(),
        "tolerance": accuracy.tolerance,
        "tailTolerance": accuracy.tail_tolerance,
        "minSamples": accuracy.min_samples,
        "calibrationSamples": samples,
        "inputs": "the user's (calibrationUri)" if user else "generated",
    }
    if not user:
        report["note"] = (
            "accepted on generated inputs only: a weaker promise than on real data "
            "(set calibrationUri to judge on what clients send)"
        )
    return report


def _profiled_row(
    prefix: str,
    built: Built,
    inputs: Arrays,
    batch_sizes: list[int],
    settings: Settings,
    device: str,
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": built.name, "status": "accepted", "profiles": []}
    peak_memory = peak_memory_reader(device)
    for batch_size in batch_sizes:
        arrays = calibration.batch(inputs, batch_size)
        try:
            result = profile(
                functools.partial(built.run, arrays), batch_size, settings.budget, peak_memory
            )
        except Exception as error:
            row.update(
                status="failed",
                reason=f"profiling at batch {batch_size}: {type(error).__name__}: {error}"[:1000],
            )
            return row
        log.info(
            "%s: batch %d p50 %.2f ms p95 %.2f ms %.1f/s (%d runs)",
            prefix,
            batch_size,
            result.p50_ms,
            result.p95_ms,
            result.throughput_rps,
            result.iterations,
        )
        row["profiles"].append(result.as_report())
    return row


def _preferred(profiles: list[dict[str, Any]]) -> list[int]:
    """Batch sizes worth waiting for: those that raise throughput over the one below."""
    chosen, best = [], 0.0
    for p in sorted(profiles, key=lambda p: p["batchSize"]):
        if p["throughputRps"] > best * 1.05:
            chosen.append(int(p["batchSize"]))
            best = p["throughputRps"]
    return chosen or [1]


def summary_table(report: dict[str, Any]) -> str:
    """A table a person can read in the Job's log."""
    lines = [
        f"{'variant':<15} {'status':<9} {'accuracy':>9} {'p95@1 ms':>9} {'best /s':>9}"
        f" {'load s':>7}  reason"
    ]
    for row in report["variants"]:
        profiles = sorted(row.get("profiles") or [], key=lambda p: p["batchSize"])
        accuracy = "" if row.get("accuracy") is None else f"{row['accuracy']:.4f}"
        p95 = f"{profiles[0]['p95Ms']:.2f}" if profiles else ""
        best = f"{max(p['throughputRps'] for p in profiles):.1f}" if profiles else ""
        load = "" if row.get("loadSeconds") is None else f"{row['loadSeconds']:.3f}"
        lines.append(
            f"{row['name']:<15} {row['status']:<9} {accuracy:>9} {p95:>9} {best:>9} {load:>7}"
            f"  {row.get('reason', '')}"
        )
    return "\n".join(lines)
