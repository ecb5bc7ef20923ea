"""The shared-prefix forward gives what TRL's fused forward gives, values and gradients.

A DPO batch is B prompt+chosen rows then B prompt+rejected rows, right-padded, labels -100 on the
prompt and padding. The shared path runs each prompt once; these tests build such batches by hand
(prompts and answers of different lengths, so both paddings are exercised) and compare against
TRL's own forward on the same model.
"""

from __future__ import annotations

import copy

import pytest
import torch
from trl.trainer.utils import add_fused_lm_head

from rlhf.models import load_policy
from rlhf.training.shared_prefix import install_shared_prefix_forward

OUTPUTS = ("log_probs", "entropy", "mean_logits", "is_top1")


def pair_batch(prompts: list[list[int]], chosen: list[list[int]], rejected: list[list[int]]) -> dict:
    rows = [p + a for p, a in zip(prompts, chosen)] + [p + a for p, a in zip(prompts, rejected)]
    starts = [len(p) for p in prompts] * 2
    width = max(len(r) for r in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    for i, (row, start) in enumerate(zip(rows, starts)):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
        labels[i, start : len(row)] = torch.tensor(row[start:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@pytest.fixture()
def two_models(tiny_base):
    """The same tiny policy twice: TRL's fused forward, and the shared-prefix one on top of it."""
    model, _ = load_policy(tiny_base, device="cpu")
    model.float()
    plain = copy.deepcopy(model)
    add_fused_lm_head(plain, outputs=OUTPUTS)
    add_fused_lm_head(model, outputs=OUTPUTS)
    install_shared_prefix_forward(model, outputs=OUTPUTS)
    return plain, model


def random_batch(seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)

    def tokens(n: int) -> list[int]:
        return torch.randint(3, 200, (n,), generator=generator).tolist()

    prompts = [tokens(n) for n in (5, 11, 2)]
    chosen = [tokens(n) for n in (4, 1, 7)]
    rejected = [tokens(n) for n in (9, 3, 2)]
    return pair_batch(prompts, chosen, rejected)


def test_log_probs_and_metrics_match_trl(two_models):
    plain, shared = two_models
    batch = random_batch(0)
    expected = plain(**batch, use_cache=False, fused_lm_head=True)
    got = shared(**batch, use_cache=False, fused_lm_head=True)
    mask = batch["labels"][:, 1:] != -100
    assert torch.equal(got.label_mask, expected.label_mask)
    assert mask.sum() > 0 and torch.all(got.log_probs[mask] < 0)
    for field in ("log_probs", "entropy", "mean_logits"):
        torch.testing.assert_close(getattr(got, field), getattr(expected, field), atol=2e-5, rtol=1e-4)
    assert torch.equal(got.is_top1, expected.is_top1)
    torch.testing.assert_close(got.loss, expected.loss, atol=2e-5, rtol=1e-4)


def test_gradients_match_trl(two_models):
    plain, shared = two_models
    batch = random_batch(1)
    for model in (plain, shared):
        model.zero_grad()
        out = model(**batch, use_cache=False, fused_lm_head=True)
        chosen, rejected = out.log_probs.sum(dim=1).chunk(2)
        (-torch.nn.functional.logsigmoid(chosen - rejected).mean()).backward()
    checked = 0
    for (name, p_plain), (_, p_shared) in zip(plain.named_parameters(), shared.named_parameters()):
        if p_plain.grad is None:
            continue
        torch.testing.assert_close(p_shared.grad, p_plain.grad, atol=1e-5, rtol=1e-3, msg=name)
        checked += 1
    assert checked > 10  # every layer took part, the prompt's included through the cache


def test_other_batches_fall_through_to_trl(two_models, monkeypatch):
    """Rows whose prompts differ (not a pair batch) and generation calls use TRL's forward."""
    plain, shared = two_models
    batch = random_batch(2)
    batch["input_ids"][3, 0] += 1  # the first rejected row no longer repeats its chosen row's prompt
    calls = []
    backbone_forward = type(shared.base_model).forward

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("past_key_values") is not None)
        return backbone_forward(self, *args, **kwargs)

    monkeypatch.setattr(type(shared.base_model), "forward", counting)
    got = shared(**batch, use_cache=False, fused_lm_head=True)
    assert calls == [False]  # one plain forward over all rows, no prompt cache
    expected = plain(**batch, use_cache=False, fused_lm_head=True)
    torch.testing.assert_close(got.log_probs, expected.log_probs)

    calls.clear()
    pair = random_batch(3)
    shared(**pair, use_cache=False, fused_lm_head=True)
    assert calls == [False, True]  # the prompts, then the answers on their cache


@pytest.fixture()
def two_scorers(tiny_base):
    """The same tiny reward model twice: its own forward, and the shared-prefix one."""
    from transformers import AutoModelForSequenceClassification

    from rlhf.training.shared_prefix import install_shared_prefix_scoring

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_base, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = 1
    plain = copy.deepcopy(model)
    install_shared_prefix_scoring(model)
    return plain, model


def reward_batch(rows: list[list[int]], pad_id: int = 1) -> dict:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def test_reward_scores_and_gradients_match_the_model_forward(two_scorers):
    plain, shared = two_scorers
    generator = torch.Generator().manual_seed(4)

    def tokens(n: int) -> list[int]:
        return torch.randint(3, 200, (n,), generator=generator).tolist()

    prompts = [tokens(n) for n in (6, 3, 9)]
    chosen = [p + tokens(n) for p, n in zip(prompts, (4, 8, 1))]
    rejected = [p + tokens(n) for p, n in zip(prompts, (2, 5, 6))]
    rejected[1] = chosen[1] + tokens(3)  # one answer extends the other: its score is read inside the other's row
    chosen[2] = chosen[2] + [1]  # a trailing pad-id token: the model reads the token before it
    batch = reward_batch(chosen + rejected)
    for model in (plain, shared):
        model.zero_grad()
        out = model(**batch, use_cache=False)
        model.scores = out.logits
        chosen_scores, rejected_scores = out.logits.squeeze(-1).chunk(2)
        (-torch.nn.functional.logsigmoid(chosen_scores - rejected_scores).mean()).backward()
    torch.testing.assert_close(shared.scores, plain.scores, atol=2e-5, rtol=1e-4)
    checked = 0
    for (name, p_plain), (_, p_shared) in zip(plain.named_parameters(), shared.named_parameters()):
        if p_plain.grad is not None:
            torch.testing.assert_close(p_shared.grad, p_plain.grad, atol=1e-5, rtol=1e-3, msg=name)
            checked += 1
    assert checked > 10


def test_reward_batches_without_a_shared_start_fall_through(two_scorers):
    plain, shared = two_scorers
    batch = reward_batch([[5, 6, 7], [8, 9], [6, 6, 7], [8, 9, 10]])  # the first pair differs at token 0
    torch.testing.assert_close(shared(**batch).logits, plain(**batch).logits)
