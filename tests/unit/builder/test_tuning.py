"""The serving search's decisions, with a made-up server: which configurations it
tries, how it scores them, and that it keeps the default unless a change clearly pays."""

from __future__ import annotations

from dataclasses import replace

from lepton_builder.request import Tensor
from lepton_builder.tritonrepo import model_config, parse, render
from lepton_builder.tuning import Level, ServingConfig, capacity_at, search

DEFAULT = ServingConfig(
    instances=1, max_batch_size=16, preferred_batch_sizes=(1, 16), max_queue_delay_us=2000
)


def _levels(rates: list[float], p95s: list[float]) -> list[Level]:
    return [
        Level(
            concurrency=c,
            throughput_rps=r,
            p50_ms=p / 2,
            p95_ms=p,
            p99_ms=p * 1.5,
            requests=int(r * 3),
        )
        for c, r, p in zip((1, 4, 8), rates, p95s, strict=True)
    ]


def test_capacity_is_the_best_rate_whose_p95_meets_the_target():
    levels = _levels([100, 300, 400], [5, 20, 80])
    assert capacity_at(levels, 50) == 300
    assert capacity_at(levels, 100) == 400
    assert capacity_at(levels, 1) == 0.0
    failing = [replace(levels[0], failed=3)]
    assert capacity_at(failing, 50) == 0.0, "a level with failed requests does not count"


def test_the_search_keeps_what_pays_one_dimension_at_a_time():
    tried: list[ServingConfig] = []

    def measure(config: ServingConfig) -> list[Level]:
        tried.append(config)
        rate = 100.0 * config.instances * (1.3 if config.max_queue_delay_us == 10_000 else 1.0)
        return _levels([rate / 2, rate, rate * 1.1], [5, 20, 200])

    default, best, trials = search(DEFAULT, measure, target_p95_ms=50)
    assert default.capacity_rps == 100 and default.config == DEFAULT
    assert best.config == replace(DEFAULT, instances=2, max_queue_delay_us=10_000)
    assert best.capacity_rps == 260
    assert len(trials) == len(tried) == 5  # default, 1 instance count, 2 delays, 1 batching
    assert tried[2].instances == 2, "later dimensions start from the better instance count"


def test_noise_below_five_percent_keeps_the_default():
    def measure(config: ServingConfig) -> list[Level]:
        return _levels([50, 100 + config.instances, 100], [5, 20, 200])

    _, best, _ = search(DEFAULT, measure, target_p95_ms=50)
    assert best.config == DEFAULT


def test_the_search_stops_at_its_trial_budget():
    def measure(config: ServingConfig) -> list[Level]:
        return _levels([1, 2, 3], [1, 1, 1])

    _, _, trials = search(DEFAULT, measure, target_p95_ms=50, max_trials=3)
    assert len(trials) == 3


def test_the_written_config_says_what_was_chosen():
    tensor = [Tensor(name="x", dtype="fp32", shape=[4])]
    text = render(
        model_config("m", tensor, tensor, "cpu", "onnxruntime", "model.onnx", [], 8, 0, 2, 0)
    )
    config = parse(text)
    (group,) = config.instance_group
    assert group.count == 2 and group.kind == group.KIND_CPU
    assert config.HasField("dynamic_batching")  # on, with nothing to tune
    assert config.dynamic_batching.max_queue_delay_microseconds == 0
    assert "preferred_batch_size" not in text
