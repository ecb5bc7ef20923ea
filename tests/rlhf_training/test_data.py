"""Snapshot loading: every problem names the file and line."""

from __future__ import annotations

import json

import pytest

from rlhf.training.data import load_preference_records, load_prompts, split_holdout

GOOD = {
    "prompt": [{"role": "user", "content": "hi"}],
    "chosen": [{"role": "assistant", "content": "hello"}],
    "rejected": [{"role": "assistant", "content": "go away"}],
}


def write(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_loads_valid_records_and_ignores_extra_keys(tmp_path):
    path = write(tmp_path / "s.jsonl", [GOOD, {**GOOD, "pair_id": 7}, ""])
    records = load_preference_records(path)
    assert records == [GOOD, GOOD]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", r"line 2: not valid JSON"),
        ([1, 2], r"line 2: expected a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "rejected"}, r"line 2: missing key 'rejected'"),
        ({**GOOD, "chosen": "hello"}, r"line 2: 'chosen' must be a non-empty list of messages"),
        ({**GOOD, "chosen": [{"role": "user", "content": "x"}]}, r"line 2: 'chosen'\[0\] must have role 'assistant'"),
        ({**GOOD, "prompt": [{"role": "robot", "content": "x"}]}, r"line 2: 'prompt'\[0\] has unknown role 'robot'"),
        ({**GOOD, "prompt": [{"role": "user"}]}, r"line 2: 'prompt'\[0\] must be an object with string 'role'"),
        ({**GOOD, "prompt": [{"role": "assistant", "content": "x"}]}, r"line 2: 'prompt' must not end with an assistant"),
    ],
)
def test_errors_name_the_line(tmp_path, bad, message):
    path = write(tmp_path / "s.jsonl", [GOOD, bad])
    with pytest.raises(ValueError, match=message) as info:
        load_preference_records(path)
    assert str(path) in str(info.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        load_preference_records(write(tmp_path / "e.jsonl", [""]))
    with pytest.raises(FileNotFoundError):
        load_preference_records(tmp_path / "missing.jsonl")


def test_prompts_are_deduplicated_in_order_and_prompt_only_lines_work(tmp_path):
    other = {"prompt": [{"role": "user", "content": "bye"}]}
    prompts = load_prompts(write(tmp_path / "p.jsonl", [GOOD, other, GOOD]))
    assert prompts == [GOOD["prompt"], other["prompt"]]


def test_holdout_split_is_seeded_and_disjoint():
    records = list(range(40))
    train, held = split_holdout(records, 0.25, seed=3)
    assert len(held) == 10 and sorted(train + held) == records
    assert split_holdout(records, 0.25, seed=3) == (train, held)
    assert split_holdout(records, 0.0, seed=3) == (records, [])
    assert len(split_holdout([1], 0.5, seed=0)[0]) == 1  # never leaves training empty
