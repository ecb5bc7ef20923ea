"""KTO (TRL KTOTrainer): thumbs up / down raise the desirable-vs-undesirable margin on held-out answers."""

from __future__ import annotations

import json
import random

import pytest
import torch

from rlhf.models import load_causal_lm, load_tokenizer
from rlhf.progress import RecordingControl, RunCancelled
from rlhf.training import config_from_dict, train
from rlhf.training.data import flatten_shuffled, load_kto_examples, split_holdout
from rlhf.training.kto import KTOConfig, class_weights

from .helpers import NICE_WORDS, TOPICS, write_toy_preferences

CONFIG = {"learning_rate": 5e-4, "max_steps": 12, "batch_size": 8, "eval_fraction": 0.25, "save_steps": 100}


def write_toy_ratings(path, count: int = 160, seed: int = 0, desirable_share: float = 0.5):
    """Single rated answers: thumbs up for lowercase words, thumbs down for numbers (TRL's unpaired format)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(count):
            prompt = [{"role": "user", "content": f"Tell me about {rng.choice(TOPICS)}."}]
            good = rng.random() < desirable_share
            words = [rng.choice(NICE_WORDS) if good else str(rng.randint(0, 999)) for _ in range(rng.randint(2, 5))]
            row = {"prompt": prompt, "completion": [{"role": "assistant", "content": " ".join(words)}], "label": good}
            handle.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def toy_ratings(tmp_path_factory):
    return write_toy_ratings(tmp_path_factory.mktemp("data") / "ratings.jsonl")


@torch.no_grad()
def desirability_margin(model_dir, tokenizer_dir, examples) -> float:
    """Mean log π(answer|x) of the desirable answers minus that of the undesirable ones (answer tokens only)."""
    model = load_causal_lm(model_dir).eval()
    tokenizer = load_tokenizer(tokenizer_dir)

    def answer_logprob(prompt, answer) -> float:
        context = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
        ids = torch.tensor([tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)["input_ids"]])
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        targets = ids[0, 1:]
        return logprobs[torch.arange(len(targets)), targets][len(context) - 1 :].sum().item()

    good = [answer_logprob(e["prompt"], e["completion"]) for e in examples if e["label"]]
    bad = [answer_logprob(e["prompt"], e["completion"]) for e in examples if not e["label"]]
    return sum(good) / len(good) - sum(bad) / len(bad)


def _holdout(path, config):
    _, held = split_holdout(load_kto_examples(path), config["eval_fraction"], seed=0)
    return flatten_shuffled(held, 0)


def test_full_kto_on_thumbs_raises_the_held_out_margin(tiny_base, toy_ratings, tmp_path):
    control = RecordingControl()
    result = train("kto", toy_ratings, tiny_base, tmp_path / "run", CONFIG, control=control)
    assert result.metrics["eval_rewards/margins"] > 0.5
    for key in ("loss", "kl", "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen"):
        assert key in result.metrics
    assert result.manifest["method"] == "kto" and result.manifest["model_kind"] == "policy"
    assert result.manifest["desirable_examples"] + result.manifest["undesirable_examples"] == result.manifest["train_examples"]
    assert any("desirable" in line and "held out" in line for line in control.lines)

    holdout = _holdout(toy_ratings, CONFIG)
    before = desirability_margin(tiny_base, tiny_base, holdout)
    after = desirability_margin(result.artifact_dir, result.artifact_dir, holdout)
    assert after > before + 5.0  # nats: the policy now clearly prefers the thumbs-up kind of answer
    assert (result.artifact_dir / "model.safetensors").is_file()


def test_lora_kto_trains_on_a_preference_snapshot_unpaired(tiny_base, tmp_path):
    pairs = write_toy_preferences(tmp_path / "pairs.jsonl", count=80, seed=3)
    config = {**CONFIG, "use_lora": True, "learning_rate": 3e-3}
    result = train("kto", pairs, tiny_base, tmp_path / "run", config)
    files = {path.name for path in result.artifact_dir.iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files
    assert result.manifest["desirable_examples"] == result.manifest["undesirable_examples"] == 60  # 60 training pairs
    holdout = _holdout(pairs, config)
    assert desirability_margin(result.artifact_dir, tiny_base, holdout) > desirability_margin(tiny_base, tiny_base, holdout)


def test_cancel_keeps_a_checkpoint_and_resume_matches_an_uninterrupted_run(tiny_base, toy_ratings, tmp_path):
    config = {**CONFIG, "max_steps": 4, "save_steps": 2}
    straight = train("kto", toy_ratings, tiny_base, tmp_path / "straight", config)
    with pytest.raises(RunCancelled, match="checkpoint kept"):
        train("kto", toy_ratings, tiny_base, tmp_path / "run", config, control=RecordingControl(stop_after_step=2))
    resumed = train("kto", toy_ratings, tiny_base, tmp_path / "run", config)
    assert resumed.final_step == straight.final_step == 4
    assert resumed.metrics == straight.metrics


def test_a_pair_stays_together_in_the_split_and_examples_are_shuffled(tmp_path):
    pairs = write_toy_preferences(tmp_path / "pairs.jsonl", count=40, seed=5)
    groups = load_kto_examples(pairs)
    assert all([e["label"] for e in group] == [True, False] for group in groups)
    train_groups, held = split_holdout(groups, 0.25, seed=0)
    assert len(held) == 10 and len(train_groups) == 30
    flat = flatten_shuffled(train_groups, 0)
    assert sum(e["label"] for e in flat) == 30
    # Unshuffled, every pair's two answers would be neighbours in the order TRL reads (its KL
    # estimate pairs each prompt with its neighbour's answer); shuffled, hardly any are, and every
    # batch of 8 holds both classes.
    group_of = {id(example): index for index, group in enumerate(train_groups) for example in group}
    same_pair_neighbours = sum(group_of[id(a)] == group_of[id(b)] for a, b in zip(flat, flat[1:]))
    assert same_pair_neighbours <= 3
    assert all(0 < sum(e["label"] for e in flat[i : i + 8]) < 8 for i in range(0, 56, 8))
    assert flatten_shuffled(train_groups, 0) == flat and flatten_shuffled(train_groups, 1) != flat


def test_class_weights_balance_the_rarer_class():
    config = KTOConfig()
    assert class_weights(config, desirable=10, undesirable=30) == (3.0, 1.0)
    assert class_weights(config, desirable=40, undesirable=10) == (1.0, 4.0)
    assert class_weights(KTOConfig(balance_classes=False, undesirable_weight=2.0), 10, 30) == (1.0, 2.0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}]},
            "line 2: missing key 'label'",
        ),
        (
            {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}], "label": "yes"},
            "line 2: 'label' must be true",
        ),
        ({"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}]}, "line 2: a pair needs both"),
        ({"completion": [{"role": "assistant", "content": "a"}], "label": True}, "line 2: missing key 'prompt'"),
        (
            {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "user", "content": "a"}], "label": True},
            "line 2: 'completion'",
        ),
    ],
)
def test_bad_lines_name_the_line_and_the_problem(tmp_path, line, message):
    good = {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "a"}], "label": True}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(line) + "\n")
    with pytest.raises(ValueError, match=message):
        load_kto_examples(path)


def test_data_with_one_class_only_is_refused_before_training(tiny_base, tmp_path):
    path = write_toy_ratings(tmp_path / "all-good.jsonl", count=20, desirable_share=1.1)
    with pytest.raises(ValueError, match="no undesirable"):
        train("kto", path, tiny_base, tmp_path / "run", CONFIG)
    assert not (tmp_path / "run" / "final").exists()


def test_config_rules():
    with pytest.raises(ValueError, match=r"^batch_size: must be >= 2 for loss_type 'kto'"):
        config_from_dict("kto", {"batch_size": 1})
    assert config_from_dict("kto", {"batch_size": 1, "loss_type": "apo_zero_unpaired"}).batch_size == 1
    with pytest.raises(ValueError, match=r"^desirable_weight: must be > 0"):
        config_from_dict("kto", {"desirable_weight": 0})


def test_the_cli_trains_kto(tiny_base, toy_ratings, tmp_path, capsys):
    from rlhf.__main__ import main

    args = ["train", "kto", "--data", str(toy_ratings), "--base", str(tiny_base), "--out", str(tmp_path / "cli")]
    code = main(args + ["--set", "max_steps=2", "--set", "batch_size=4", "--set", "max_length=256", "--set", "eval_fraction=0"])
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.rindex("\n{") + 1 :])
    assert summary["final_step"] == 2
    assert json.loads((tmp_path / "cli" / "final" / "manifest.json").read_text())["method"] == "kto"
