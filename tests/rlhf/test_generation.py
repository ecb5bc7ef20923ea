"""Batched, reproducible, resumable sampling (`rlhf.generation`) on a tiny random policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlhf.generation import (
    GeneratedBatch,
    SamplingConfig,
    _CounterSampler,
    _decode_rows,
    cli,
    generate,
    iter_generate,
    validate_conversations,
)
from rlhf.models import load_policy
from rlhf.progress import RecordingControl, RunCancelled

# Prompts of different lengths so batches need real left padding.
QUESTIONS = [
    "hi",
    "What is the capital of France?",
    "Write a haiku about autumn leaves falling on a quiet pond.",
    "2+2?",
    "Explain, in two sentences, why the sky looks blue during the day but red at sunset.",
    "Name a color.",
    "Translate 'good morning' into German, French and Spanish, please.",
    "ok",
]
CONVERSATIONS = [[{"role": "user", "content": q}] for q in QUESTIONS]
CONVERSATIONS[2] = [{"role": "system", "content": "You are terse."}, *CONVERSATIONS[2]]
CONVERSATIONS[5] = [
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "Name a color."},
]
FAST = SamplingConfig(max_new_tokens=12, batch_size=8)


def _run(policy, conversations=CONVERSATIONS, k=2, sampling=FAST, **kwargs):
    model, tokenizer = policy
    return generate(None, conversations, k, sampling, model=model, tokenizer=tokenizer, **kwargs)


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("top_k", -1),
        ("max_new_tokens", 0),
        ("max_new_tokens", 4097),
        ("batch_size", 0),
        ("seed", -1),
        ("top_k", 2.5),
        ("temperature", True),
    ],
)
def test_invalid_sampling_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SamplingConfig(**{field: value})


def test_sampling_config_defaults_hash_and_round_trip() -> None:
    config = SamplingConfig()
    assert config.to_dict() == {
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": 50,
        "max_new_tokens": 128,
        "seed": 0,
        "batch_size": 16,
    }
    assert SamplingConfig.from_dict(config.to_dict()) == config
    assert config.config_hash() == SamplingConfig().config_hash()
    assert len(config.config_hash()) == 64
    assert config.config_hash() != SamplingConfig(seed=1).config_hash()
    assert SamplingConfig(temperature=0).config_hash() == SamplingConfig(temperature=0.0).config_hash()
    assert SamplingConfig(temperature=0).greedy
    with pytest.raises(ValueError, match="tempreature"):
        SamplingConfig.from_dict({"tempreature": 1.0})


@pytest.mark.parametrize(
    ("conversations", "message"),
    [
        (
            [CONVERSATIONS[0], [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]],
            "conversation 1: must end with a user",
        ),
        ([CONVERSATIONS[0], CONVERSATIONS[1], []], "conversation 2: must be a non-empty"),
        ([[{"role": "bot", "content": "x"}]], "conversation 0, message 0: role"),
        ([CONVERSATIONS[0], [{"role": "user", "content": 3}]], "conversation 1, message 0: content"),
    ],
)
def test_invalid_conversations_name_the_index(conversations, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_conversations(conversations)


def test_bad_arguments_are_rejected_before_any_work(tiny_policy) -> None:
    with pytest.raises(ValueError, match="k must be"):
        _run(tiny_policy, k=0)
    with pytest.raises(ValueError, match="unique"):
        _run(tiny_policy, conversations=CONVERSATIONS[:2], indices=[7, 7])
    with pytest.raises(ValueError, match="indices has 1 entries for 2"):
        _run(tiny_policy, conversations=CONVERSATIONS[:2], indices=[7])
    too_long = [CONVERSATIONS[0], [{"role": "user", "content": "x" * 9000}]]
    with pytest.raises(ValueError, match=r"conversation 1: .* exceed the model's 8192 positions"):
        _run(tiny_policy, conversations=too_long)


# ---------------------------------------------------------------------------------- generation


def test_k_responses_per_conversation_in_input_order(tiny_policy) -> None:
    results = _run(tiny_policy, k=3)
    assert len(results) == len(CONVERSATIONS)
    assert all(len(responses) == 3 and all(isinstance(r, str) for r in responses) for responses in results)
    assert any(r for responses in results for r in responses)  # not all empty
    assert all(len(set(responses)) > 1 for responses in results)  # samples differ from each other
    # Input order, not length order: the result for a prompt does not depend on its neighbours.
    assert results[3] == _run(tiny_policy, conversations=[CONVERSATIONS[3]], k=3, indices=[3])[0]


def test_same_seed_and_ids_reproduce_different_seed_changes(tiny_policy) -> None:
    first = _run(tiny_policy)
    torch.manual_seed(1234)  # the global RNG plays no part
    assert _run(tiny_policy) == first
    assert _run(tiny_policy, sampling=SamplingConfig(max_new_tokens=12, batch_size=8, seed=1)) != first
    # Ids, not positions, seed a conversation: other ids give other samples.
    assert _run(tiny_policy, indices=[100 + i for i in range(len(CONVERSATIONS))]) != first


def test_resuming_with_the_remaining_ids_equals_one_full_run(tiny_policy) -> None:
    model, tokenizer = tiny_policy
    ids = [40 + 3 * i for i in range(len(CONVERSATIONS))]
    full = dict(zip(ids, _run(tiny_policy, indices=ids), strict=True))

    # A task that crashed after the first batch: it kept what it had written...
    kept: dict[int, list[str]] = {}
    batches = iter_generate(
        None,
        CONVERSATIONS,
        2,
        SamplingConfig(max_new_tokens=12, batch_size=6),
        model=model,
        tokenizer=tokenizer,
        indices=ids,
    )
    first_batch = next(batches)
    batches.close()
    kept.update(zip(first_batch.indices, first_batch.responses, strict=True))
    assert 0 < len(kept) < len(ids)

    # ...and resumes with only the missing conversations, under their ids, in other batches.
    missing = [i for i, conversation_id in enumerate(ids) if conversation_id not in kept]
    rest = _run(
        tiny_policy,
        conversations=[CONVERSATIONS[i] for i in missing],
        indices=[ids[i] for i in missing],
        sampling=SamplingConfig(max_new_tokens=12, batch_size=2),
    )
    kept.update(zip([ids[i] for i in missing], rest, strict=True))
    assert kept == full


def test_batched_greedy_equals_one_prompt_at_a_time(tiny_policy) -> None:
    greedy = SamplingConfig(temperature=0, max_new_tokens=20, batch_size=8)
    batched = _run(tiny_policy, k=2, sampling=greedy)
    alone = [
        _run(
            tiny_policy,
            conversations=[conversation],
            k=2,
            sampling=SamplingConfig(temperature=0, max_new_tokens=20, batch_size=1),
        )[0]
        for conversation in CONVERSATIONS
    ]
    assert batched == alone
    assert all(a == b for a, b in batched)  # greedy: the K samples are identical
    assert len({a for a, _ in batched}) == len(CONVERSATIONS)  # and depend on the prompt


def test_iter_generate_yields_caller_ids_and_reports_progress(tiny_policy) -> None:
    model, tokenizer = tiny_policy
    ids = [900 + i for i in range(len(CONVERSATIONS))]
    control = RecordingControl()
    sampling = SamplingConfig(max_new_tokens=6, batch_size=6)  # k=2 -> 3 prompts per batch
    batches = list(iter_generate(None, CONVERSATIONS, 2, sampling, control, ids, model, tokenizer))

    assert [len(b.indices) for b in batches] == [3, 3, 2]
    assert sorted(i for b in batches for i in b.indices) == ids
    assert all(isinstance(b, GeneratedBatch) and b.seconds > 0 and 0 < b.new_tokens <= len(b.indices) * 2 * 6 for b in batches)
    assert all(len(r) == 2 and len(t) == 2 for b in batches for r, t in zip(b.responses, b.truncated, strict=True))
    # Longest prompt first, so batches pad little.
    lengths = {900 + i: len(json.dumps(c)) for i, c in enumerate(CONVERSATIONS)}
    assert max(lengths.values()) == max(lengths[i] for i in batches[0].indices)
    assert [(step, total) for step, total, _ in control.reports] == [(3, 8), (6, 8), (8, 8)]
    assert all(metrics["tokens_per_s"] > 0 for _, _, metrics in control.reports)


def test_should_stop_cancels_between_batches(tiny_policy) -> None:
    model, tokenizer = tiny_policy
    control = RecordingControl(stop_after_step=2)
    seen: list[GeneratedBatch] = []
    with pytest.raises(RunCancelled):
        for batch in iter_generate(
            None,
            CONVERSATIONS,
            1,
            SamplingConfig(max_new_tokens=4, batch_size=2),
            control,
            model=model,
            tokenizer=tokenizer,
        ):
            seen.append(batch)
    assert len(seen) == 1 and len(seen[0].indices) == 2  # the finished batch was handed over first
    assert control.reports[-1][0] == 2


def test_truncation_is_reported_and_specials_are_stripped(tiny_policy) -> None:
    model, tokenizer = tiny_policy
    [batch] = iter_generate(None, CONVERSATIONS[:1], 1, SamplingConfig(temperature=0, max_new_tokens=3), model=model, tokenizer=tokenizer)
    assert batch.new_tokens <= 3
    rows = [[5 + 3, 6 + 3, 2, 2, 2], [1, 0, 104, 105]]  # "\x05\x06" then EOS and padding; specials then "ef"
    texts, stopped, new_tokens = _decode_rows(rows, [2], tokenizer)
    assert texts == ["\x05\x06".strip(), "ef"]
    assert stopped == [True, False]
    assert new_tokens == 3 + 4


def test_model_generation_config_does_not_change_sampling(tiny_model_path: Path, tiny_policy) -> None:
    # A checkpoint shipping a repetition penalty must not reshape the policy's distribution.
    model, tokenizer = load_policy(tiny_model_path, device="cpu")
    model.generation_config.repetition_penalty = 5.0
    model.generation_config.no_repeat_ngram_size = 1
    greedy = SamplingConfig(temperature=0, max_new_tokens=16)
    assert _run((model, tokenizer), sampling=greedy, k=1) == _run(tiny_policy, sampling=greedy, k=1)
    assert model.generation_config.repetition_penalty == 5.0  # restored afterwards


@pytest.mark.parametrize(("top_k", "top_p", "kept"), [(0, 1.0, 5), (3, 1.0, 3), (0, 0.6, 2)])
def test_counter_sampler_matches_the_filtered_distribution(top_k: int, top_p: float, kept: int) -> None:
    logits = torch.tensor([2.0, 1.5, 1.0, 0.0, -1.0])
    rows = 6000
    sampler = _CounterSampler(SamplingConfig(temperature=1.0, top_k=top_k, top_p=top_p), [(i, 0) for i in range(rows)], 0)
    scores = sampler(torch.zeros((rows, 0), dtype=torch.long), logits.repeat(rows, 1))
    assert torch.isfinite(scores).sum(dim=-1).eq(1).all()  # exactly one allowed token per row
    counts = torch.bincount(scores.argmax(dim=-1), minlength=5).float()
    expected = torch.zeros(5)
    expected[:kept] = torch.softmax(logits[:kept], dim=-1)
    assert counts[kept:].sum() == 0
    assert torch.allclose(counts / rows, expected, atol=0.025)


def test_counter_sampler_top_p_widens_beyond_its_first_256_candidates() -> None:
    logits = -0.002 * torch.arange(1000, dtype=torch.float32)  # a flat tail: the nucleus is wide
    probs = torch.softmax(logits, dim=-1)
    nucleus = int(((torch.cumsum(probs, dim=-1) - probs) < 0.9).sum())  # reference: full sort
    rows = 3000
    sampler = _CounterSampler(SamplingConfig(temperature=1.0, top_k=0, top_p=0.9), [(i, 0) for i in range(rows)], 0)
    chosen = sampler(torch.zeros((rows, 0), dtype=torch.long), logits.repeat(rows, 1)).argmax(dim=-1)
    assert nucleus > 256
    assert int(chosen.max()) < nucleus
    assert int(chosen.max()) > 256


# ---------------------------------------------------------------------------------- CLI


def test_generate_cli_writes_k_responses_per_line(tmp_path: Path, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"prompt": "Say hi", "id": "p-1"})
        + "\n\n"
        + json.dumps({"messages": CONVERSATIONS[4]})
        + "\n"
        + json.dumps({"prompt": "Bye"})
        + "\n"
    )
    out = tmp_path / "out" / "responses.jsonl"
    argv = [
        "--model",
        str(tiny_model_path),
        "--prompts",
        str(prompts),
        "--k",
        "2",
        "--out",
        str(out),
        "--max-new-tokens",
        "8",
        "--seed",
        "5",
    ]
    assert cli(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert lines[0]["id"] == "p-1" and "id" not in lines[1]
    assert lines[0]["messages"] == [{"role": "user", "content": "Say hi"}]
    assert all(len(line["responses"]) == 2 and len(line["truncated"]) == 2 for line in lines)
    assert lines[0]["sampling"]["seed"] == 5

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"messages": [{"role": "assistant", "content": "x"}]}) + "\n")
    assert cli(["--model", str(tiny_model_path), "--prompts", str(bad), "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
