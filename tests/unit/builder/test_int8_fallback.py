"""The accuracy-aware fallback's choices: which nodes go back to fp32 at each try, when
it stops, and which try is served."""

from __future__ import annotations

from types import SimpleNamespace

from lepton_builder.int8 import (
    Attempt,
    Fallback,
    TransformerShape,
    fallback_plan,
    run_fallback,
    transformer_shape,
)


def test_the_plan_doubles_the_most_sensitive_nodes_kept_in_fp32():
    ranked = [f"n{i}" for i in range(10)]
    plan = fallback_plan(ranked, tries=6)
    assert plan == [[], ["n0"], ["n0", "n1"], ranked[:4], ranked[:8], ranked]
    assert fallback_plan(ranked, tries=3) == [[], ["n0"], ["n0", "n1"]]
    # Fewer nodes than tries: it ends with all of them, never repeating a set.
    assert fallback_plan(["a", "b", "c"], tries=6) == [[], ["a"], ["a", "b"], ["a", "b", "c"]]
    assert fallback_plan([], tries=6) == [[]]


def _attempt(passes_at: int):
    def attempt(exclude: list[str]) -> Attempt:
        accepted = len(exclude) >= passes_at
        return Attempt(exclude, 0.99 if accepted else 0.9, 0.98, accepted, 1.0 + len(exclude))

    return attempt


def test_the_loop_stops_at_the_first_try_the_guard_accepts_and_serves_it():
    plan = fallback_plan([f"n{i}" for i in range(10)], tries=6)
    record = run_fallback(plan, _attempt(passes_at=3))
    assert [len(a.fp32_nodes) for a in record.attempts] == [0, 1, 2, 4]
    assert record.chosen() == 3 and record.attempts[3].accepted


def test_when_no_try_passes_every_try_is_recorded_and_the_last_is_the_row():
    plan = fallback_plan([f"n{i}" for i in range(10)], tries=4)
    record = run_fallback(plan, _attempt(passes_at=100))
    assert len(record.attempts) == 4 and not any(a.accepted for a in record.attempts)
    assert record.chosen() == 3
    report = record.attempts[0].as_report()
    assert report == {
        "fp32Nodes": [],
        "accuracy": 0.9,
        "accuracyTail": 0.98,
        "accepted": False,
        "p50MsBatch1": 1.0,
    }
    assert Fallback().attempts == []


def test_only_bert_like_encoders_get_the_transformer_optimizer():
    bert = SimpleNamespace(
        model=SimpleNamespace(
            config=SimpleNamespace(num_attention_heads=12, hidden_size=384, model_type="bert")
        )
    )
    assert transformer_shape(bert) == TransformerShape(12, 384)
    gpt = SimpleNamespace(
        model=SimpleNamespace(
            config=SimpleNamespace(num_attention_heads=12, hidden_size=768, model_type="gpt2")
        )
    )
    assert transformer_shape(gpt) is None
    assert transformer_shape(object()) is None
