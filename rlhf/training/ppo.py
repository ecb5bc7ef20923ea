"""PPO for RLHF, our own implementation (TRL 1.x no longer ships a PPO trainer).

The recipe is InstructGPT's (Ouyang et al. 2022, "Training language models to follow instructions
with human feedback", §3.5 and appendix C) with the details of OpenAI's reference implementation
as catalogued by Huang, Liu and von Werra (2024, "The N Implementation Details of RLHF with PPO";
the same authors' "The N+ Implementation Details of RLHF with PPO: A Case Study on TL;DR
Summarization" covers the same ground). Details are named below as in those write-ups.

One PPO *step* here is one iteration of:

1. **Rollout.** Take `batch_size` prompts (a seeded permutation per epoch), format them with the
   chat template, pad them on the left, and sample one response each from the current policy
   (temperature `temperature`, no top-k/top-p, at most `max_completion_length` tokens).
2. **EOS handling.** Everything after the first EOS is masked out ("truncate the response after
   the EOS token"; the EOS itself is kept: it is the action that ends the episode). Responses that
   never produced EOS can be penalised with `missing_eos_penalty` (the "EOS trick": otherwise the
   reward model happily scores text cut off mid-sentence). We subtract the penalty from the score
   (as TRL's old PPOTrainer did) rather than replacing the score by a constant.
3. **Log-probabilities and values** of the sampled tokens are recomputed with a forward pass with
   the logits divided by the sampling temperature ("temperature-scaled logits", or the importance
   ratio starts away from 1) and with position ids that skip the left padding (as `generate`
   does). Dropout is disabled everywhere ("disable dropout"), so these equal what the update
   recomputes for an unchanged policy.
4. **Rewards.** The score from the reward function (a reward-model version through
   `reward.RewardModelScorer`, which reads the reward at the last token, or any callable in TRL's
   reward-function convention) is added at the last valid token; every token gets the per-token
   KL penalty `-kl_coef * (log π(a|s) - log π_ref(a|s))` against the frozen reference, which is the
   parent policy (with LoRA: the same network with the adapter disabled). `kl_coef` is fixed, or
   adaptive with Ziegler et al. 2019's proportional controller ("adaptive KL": `adaptive_kl`,
   `kl_target`, `kl_horizon`). Optionally the per-token rewards are whitened without shifting
   their mean (`whiten_rewards`).
5. **GAE** (`gamma`, `lam`; γ=1, λ=0.95 as in both papers) over the response tokens; returns =
   advantages + values; advantages are then whitened over the batch's valid tokens ("advantage
   whitening").
6. **Updates.** `num_ppo_epochs` passes over the batch in `num_mini_batches` shuffled minibatches
   (each optionally split in `gradient_accumulation_steps` micro-batches): clipped policy
   objective (`cliprange`), clipped value objective `0.5 * max((V-R)², (V_clip-R)²)`
   (`cliprange_value`, "value function clipping"), `vf_coef`, optional entropy bonus, global
   gradient-norm clipping, AdamW with eps=1e-5 (the reference implementation's Adam epsilon,
   not PyTorch's 1e-8) and a learning rate annealed linearly to 0 by default.

Deliberate deviations, and why:
* The critic is a scalar value head on the policy's own final hidden state ("actor with value
  head"), zero-initialised. InstructGPT and the reference implementation use a separate critic
  initialised from the reward model; sharing the backbone halves memory and keeps one network to
  checkpoint and to adapt with LoRA, at the cost of value-loss gradients reaching the policy
  (scaled down by `vf_coef`).
* No PPO-ptx pretraining-gradient mix (InstructGPT §3.5): we have no pretraining corpus here.
* The reward model's score is used as is; the reference implementation normalises the reward
  model so that its outputs have mean 0 and std 1 on samples of the initial policy ("reward
  normalization"). The reward trainer's `center_rewards_coefficient` gives a similar centring at
  training time, and `whiten_rewards` rescales per batch.
* Sampling and minibatch order are seeded from (seed, step), so a resumed run replays exactly the
  rollouts an uninterrupted run would, without storing RNG state.

Metrics reported per step: reward (mean score before penalties), score (with the EOS penalty),
kl (mean over responses of the summed per-token KL to the reference), non_score_reward,
rlhf_reward, entropy (mean per-token, at rollout), clip_fraction, approx_kl (0.5·E[(log ratio)²]),
policy_loss, value_loss, value_clip_fraction, kl_coef, response_length, eos_fraction,
learning_rate, loss, tokens_per_s, eta_s.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rlhf.config import option, override
from rlhf.models import load_causal_lm, load_tokenizer
from rlhf.progress import RunCancelled, RunControl
from rlhf.training.callbacks import StepTimer, TrainingDiverged, derived_seed, divergence_message
from rlhf.training.config import BaseTrainConfig, check
from rlhf.training.data import load_prompts
from rlhf.training.devices import choose_device, seed_everything
from rlhf.training.distributed import materialize_parent
from rlhf.training.hf_trainer import lora_config, train_once
from rlhf.training.rl_reward import RewardFn, filter_prompts_by_length, load_reward, reward_identity
from rlhf.training.run_dir import CHECKPOINT_COMPLETE_MARKER, CHECKPOINT_PREFIX, RunDir, TrainResult, save_model_weights
from rlhf.types import Conversation

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class PPOConfig(BaseTrainConfig):
    """PPO training. Shared fields are documented on `BaseTrainConfig`; defaults differ as noted."""

    method: ClassVar[str] = "ppo"

    learning_rate: float = override(
        BaseTrainConfig, "learning_rate", 1e-6, help="1e-6 (Huang et al. use 3e-6 for 1B models; LoRA wants ~1e-5 to 1e-4)."
    )
    batch_size: int = override(BaseTrainConfig, "batch_size", 16, help="Rollouts (prompts, one sampled response each) per PPO step.")
    max_completion_length: int = option(64, min=1, help="Maximum tokens per sampled response.")
    temperature: float = option(0.7, min=0.0, min_exclusive=True, help="Sampling temperature; log-probabilities use the same temperature.")
    num_ppo_epochs: int = option(4, min=1, help="Optimisation passes over each rollout batch.")
    num_mini_batches: int = option(1, min=1, help="Minibatches (optimizer steps) per PPO epoch.")
    cliprange: float = option(0.2, min=0.0, max=1.0, min_exclusive=True, max_exclusive=True, help="Clip range ε of the policy ratio.")
    cliprange_value: float = option(0.2, min=0.0, min_exclusive=True, help="Clip range of the value prediction around its rollout value.")
    vf_coef: float = option(0.1, min=0.0, help="Weight of the value loss.")
    entropy_coef: float = option(0.0, min=0.0, help="Weight of an entropy bonus (0 in InstructGPT and Huang et al.).")
    gamma: float = option(1.0, min=0.0, max=1.0, min_exclusive=True, help="Discount factor.")
    lam: float = option(0.95, min=0.0, max=1.0, help="GAE λ: how far advantages look ahead (1 = Monte Carlo returns, 0 = one-step TD).")
    kl_coef: float = option(0.05, min=0.0, help="Initial (or fixed) coefficient β of the per-token KL penalty.")
    adaptive_kl: bool = option(False, help="Adapt `kl_coef` towards `kl_target` (Ziegler et al. 2019).")
    kl_target: float = option(6.0, min=0.0, min_exclusive=True, help="Target KL (nats per response) of the adaptive controller.")
    kl_horizon: int = option(10000, min=1, help="Horizon (in rollouts) of the adaptive controller.")
    whiten_rewards: bool = option(False, help="Whiten per-token rewards (scale only) before GAE.")
    num_processes: int = option(
        1, min=1, max=1, help="PPO trains on one device (for multi-GPU RL use RLOO or GRPO, which run through `accelerate launch`)."
    )
    missing_eos_penalty: float | None = option(
        None, min=0.0, help="Subtracted from the score of responses that end without EOS (so >= 0), or null."
    )

    def check(self) -> None:
        super().check()
        check(
            self.max_completion_length < self.max_length,
            "max_completion_length",
            f"must be < max_length ({self.max_length}) to leave room for the prompt",
        )
        check(
            self.batch_size % (self.num_mini_batches * self.gradient_accumulation_steps) == 0,
            "batch_size",
            f"must be divisible by num_mini_batches * gradient_accumulation_steps "
            f"({self.num_mini_batches} * {self.gradient_accumulation_steps})",
        )

    def total_steps(self, prompt_count: int) -> int:
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.num_train_epochs * prompt_count / self.batch_size))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def train_ppo(
    data_path: Path | str,
    base_model_path: Path | str,
    out_dir: Path | str,
    config: PPOConfig,
    control: RunControl | None = None,
    *,
    reward_model_path: Path | str | None = None,
    reward_fn: RewardFn | None = None,
) -> TrainResult:
    """Optimise the policy in `base_model_path` against a reward with PPO; artifact in `out_dir/final`.

    The reward is a reward-model artifact (`reward_model_path`) or a callable `reward_fn` in TRL's
    convention (exactly one of them). Idempotent and resumable like the other methods; raises
    RunCancelled (checkpoint kept) or TrainingDiverged (no artifact).
    """
    identity = reward_identity("ppo", reward_model_path, reward_fn)
    return train_once(
        out_dir,
        config,
        data_path,
        base_model_path,
        control,
        lambda run, control: _train(run, config, control, reward_model_path, reward_fn),
        extra_identity=identity,
    )


def _train(
    run: RunDir,
    config: PPOConfig,
    control: RunControl,
    reward_model_path: Path | str | None,
    reward_fn: RewardFn | None,
) -> TrainResult:
    import torch

    seed_everything(config.seed)
    device = choose_device(config)
    parent = materialize_parent(run.base_model, run.work_dir)
    tokenizer = load_tokenizer(parent)
    prompts = filter_prompts_by_length(tokenizer, load_prompts(run.data_path), config.max_length - config.max_completion_length, control)
    total_steps = config.total_steps(len(prompts))
    control.log(f"{len(prompts)} prompts, {total_steps} PPO steps of {config.batch_size} rollouts")

    reward = load_reward(reward_model_path, reward_fn, device, config.max_length)

    seed_everything(config.seed)  # LoRA and the value head initialise randomly
    policy = _PolicyWithValueHead.build(parent, config, device.device)
    reference = None if config.use_lora else _frozen_reference(parent, device.device)
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=config.learning_rate, eps=1e-5, weight_decay=config.weight_decay)
    state = _LoopState(kl_coef=config.kl_coef, step=0, log_history=[])
    checkpoint = run.latest_checkpoint()
    if checkpoint is not None:
        state = _load_checkpoint(checkpoint, policy, optimizer)
        control.log(f"resumed from {checkpoint.name} at step {state.step}/{total_steps}")
    else:
        control.log(f"training for {total_steps} steps")

    encoded = [_encode_prompt(tokenizer, prompt) for prompt in prompts]
    eos_ids = _eos_ids(tokenizer, policy.lm)
    autocast = (lambda: torch.autocast(device_type=device.device.type, dtype=torch.bfloat16)) if device.bf16 else nullcontext
    timer = StepTimer()
    timer.begin(state.step)
    while state.step < total_steps:
        step = state.step + 1
        indices = _prompt_indices(config, len(prompts), step)
        metrics, tokens = _ppo_step(
            step=step,
            total_steps=total_steps,
            config=config,
            policy=policy,
            reference=reference,
            optimizer=optimizer,
            tokenizer=tokenizer,
            prompts=[prompts[i] for i in indices],
            prompt_ids=[encoded[i] for i in indices],
            eos_ids=eos_ids,
            reward_fn=reward,
            kl_coef=state.kl_coef,
            autocast=autocast,
        )
        seconds = metrics.pop("_seconds")
        if config.adaptive_kl:
            state.kl_coef = _adaptive_kl(state.kl_coef, metrics["kl"], config)
        state.step = step
        # The history (kept in checkpoints) holds only deterministic values; rates go to the report.
        state.log_history.append({"step": step, **metrics})
        rates = timer.rates(step, total_steps, None)
        rates["tokens_per_s"] = tokens / max(seconds, 1e-9)
        control.report(step, total_steps, {**metrics, **rates})

        is_last = step == total_steps
        stop = control.should_stop()
        if stop or is_last or step % config.save_steps == 0:
            _save_checkpoint(run, config, state, policy, optimizer)
        if stop:
            kept = run.checkpoints_dir / f"{CHECKPOINT_PREFIX}{step}"
            raise RunCancelled(f"cancelled at step {step}; checkpoint kept at {kept}")

    last = state.log_history[-1] if state.log_history else {}
    final_metrics = {key: value for key, value in last.items() if key != "step"}
    return run.write_final(
        save_weights=lambda target: _save_policy(policy, target, run.base_model),
        tokenizer=tokenizer,
        final_step=state.step,
        metrics=final_metrics,
        artifact_type="lora_adapter" if config.use_lora else "full",
        model_kind="policy",
        extra_manifest={**reward_identity(run.method, reward_model_path, reward_fn), "prompts": len(prompts)},
    )


# --------------------------------------------------------------------------------------------
# Model: policy + value head
# --------------------------------------------------------------------------------------------


class _PolicyWithValueHead:
    """The trained causal LM (optionally PEFT-wrapped) and a scalar value head on its final hidden state."""

    def __init__(self, model: Any, value_head: nn.Linear, device: torch.device) -> None:
        self.model = model  # PeftModel or PreTrainedModel; used for generate() and adapter switching
        self.value_head = value_head
        self.device = device
        self.is_peft = hasattr(model, "disable_adapter")
        # The causal LM itself (LoRA layers are injected in place, so calling it runs the adapter).
        self.lm: PreTrainedModel = model.get_base_model() if self.is_peft else model

    @classmethod
    def build(cls, parent: Path, config: PPOConfig, device: torch.device) -> _PolicyWithValueHead:
        import torch

        model = load_causal_lm(parent)
        peft_config = lora_config(config, "causal_lm")
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        if config.gradient_checkpointing:
            lm = model.get_base_model() if peft_config is not None else model
            lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            if peft_config is not None:
                model.enable_input_require_grads()
        _disable_dropout(model)
        hidden = model.config.get_text_config().hidden_size
        value_head = torch.nn.Linear(hidden, 1)
        # Zero init: values start at 0 instead of random noise the critic would first have to unlearn.
        torch.nn.init.zeros_(value_head.weight)
        torch.nn.init.zeros_(value_head.bias)
        model.to(device)
        value_head.to(device)
        return cls(model, value_head, device)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad] + list(self.value_head.parameters())

    def named_trainable_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"policy.{name}": p for name, p in self.model.named_parameters() if p.requires_grad}
        tensors.update({f"value_head.{name}": p for name, p in self.value_head.named_parameters()})
        return tensors

    def train(self, mode: bool = True) -> None:
        # Dropout is already disabled; train() only matters for gradient checkpointing.
        self.model.train(mode)
        self.value_head.train(mode)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        context_length: int,
        temperature: float,
        *,
        with_values: bool = True,
        use_adapter: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (temperature-scaled) of the response positions, and values of the same states."""
        context = self.model.disable_adapter() if (self.is_peft and not use_adapter) else nullcontext()
        with context:
            hidden = _response_hidden(self.lm, input_ids, attention_mask, context_length)
            logits = self.lm.get_output_embeddings()(hidden).float() / temperature
        values = self.value_head(hidden.float()).squeeze(-1) if with_values else None
        return logits, values


def _frozen_reference(parent: Path, device: torch.device) -> PreTrainedModel:
    model = load_causal_lm(parent)
    _disable_dropout(model)
    model.eval()
    model.requires_grad_(False)
    return model.to(device)


def _disable_dropout(model: Any) -> None:
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _response_hidden(lm: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, context_length: int) -> torch.Tensor:
    """Final hidden states at the positions that predict the response tokens.

    Position ids count only real tokens, as `generate` does with left padding; without this the
    recomputed log-probabilities differ from the sampling ones.
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    backbone = getattr(lm, lm.base_model_prefix)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False).last_hidden_state
    return hidden[:, context_length - 1 : -1]


def _reference_logits(
    policy: _PolicyWithValueHead,
    reference: PreTrainedModel | None,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    context_length: int,
    temperature: float,
) -> torch.Tensor:
    if reference is None:  # LoRA: the parent is the same network with the adapter switched off
        logits, _ = policy.forward(input_ids, attention_mask, context_length, temperature, with_values=False, use_adapter=False)
        return logits
    hidden = _response_hidden(reference, input_ids, attention_mask, context_length)
    return reference.get_output_embeddings()(hidden).float() / temperature


# --------------------------------------------------------------------------------------------
# One PPO step
# --------------------------------------------------------------------------------------------


def _ppo_step(
    *,
    step: int,
    total_steps: int,
    config: PPOConfig,
    policy: _PolicyWithValueHead,
    reference: PreTrainedModel | None,
    optimizer: torch.optim.Optimizer,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[Conversation],
    prompt_ids: list[list[int]],
    eos_ids: list[int],
    reward_fn: RewardFn,
    kl_coef: float,
    autocast: Callable[[], Any],
) -> tuple[dict[str, float], int]:
    import time

    import torch

    started = time.monotonic()
    device = policy.device
    lr = _learning_rate(config, step, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr

    # ---- 1-2. rollout -------------------------------------------------------------------
    torch.manual_seed(derived_seed(config.seed, step, 0))  # sampling is a function of (seed, step)
    query, query_mask = _left_pad(prompt_ids, tokenizer.pad_token_id, device)
    context_length = query.shape[1]
    policy.train(False)
    with torch.no_grad(), autocast():
        sequences = policy.model.generate(
            input_ids=query,
            attention_mask=query_mask,
            do_sample=True,
            temperature=config.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=config.max_completion_length,
            eos_token_id=eos_ids,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=True,
        )
    responses = sequences[:, context_length:]
    response_mask, has_eos, lengths = _mask_after_eos(responses, eos_ids)
    responses = responses.masked_fill(~response_mask, tokenizer.pad_token_id)
    input_ids = torch.cat([query, responses], dim=1)
    attention_mask = torch.cat([query_mask, response_mask.long()], dim=1)
    mask = response_mask.float()

    # ---- 3. log-probs, values, reference log-probs ---------------------------------------
    micro = config.batch_size // (config.num_mini_batches * config.gradient_accumulation_steps)
    logprobs, values, ref_logprobs, entropies = [], [], [], []
    with torch.no_grad(), autocast():
        for chunk in _chunks(len(prompts), micro):
            logits, chunk_values = policy.forward(input_ids[chunk], attention_mask[chunk], context_length, config.temperature)
            logprobs.append(_token_logprobs(logits, responses[chunk]))
            entropies.append(_entropy(logits))
            values.append(chunk_values)
            ref_logits = _reference_logits(policy, reference, input_ids[chunk], attention_mask[chunk], context_length, config.temperature)
            ref_logprobs.append(_token_logprobs(ref_logits, responses[chunk]))
    logprobs = torch.cat(logprobs) * mask
    ref_logprobs = torch.cat(ref_logprobs) * mask
    values = torch.cat(values).float() * mask
    rollout_entropy = _masked_mean(torch.cat(entropies), mask)

    # ---- 4. rewards ---------------------------------------------------------------------
    # Same convention as TRL's RLOO/GRPO, so one reward function serves all three: the text
    # without special tokens, the ids up to and including the EOS.
    answer_ids = [row[: int(n)].tolist() for row, n in zip(responses, lengths, strict=True)]
    completions = [[{"role": "assistant", "content": tokenizer.decode(ids, skip_special_tokens=True)}] for ids in answer_ids]
    raw_scores = reward_fn(prompts=prompts, completions=completions, completion_ids=answer_ids)
    scores = torch.tensor([float(s) for s in raw_scores], dtype=torch.float32, device=device)
    if scores.shape != (len(prompts),):
        raise ValueError(f"the reward function returned {scores.numel()} scores for {len(prompts)} completions")
    if not torch.isfinite(scores).all():
        raise ValueError(f"the reward function returned a non-finite score at step {step}")
    penalised = scores.clone()
    if config.missing_eos_penalty is not None:
        penalised[~has_eos] -= config.missing_eos_penalty

    kl = (logprobs - ref_logprobs) * mask  # k1 estimator per token
    non_score = -kl_coef * kl
    rewards = non_score.clone()
    last = (lengths - 1).clamp(min=0)
    rewards[torch.arange(len(prompts), device=device), last] += penalised
    if config.whiten_rewards:
        rewards = _masked_whiten(rewards, mask, shift_mean=False) * mask

    # ---- 5. GAE -------------------------------------------------------------------------
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros(len(prompts), device=device)
    response_length = rewards.shape[1]
    for t in reversed(range(response_length)):
        next_values = values[:, t + 1] if t + 1 < response_length else torch.zeros_like(last_gae)
        delta = rewards[:, t] + config.gamma * next_values - values[:, t]
        last_gae = delta + config.gamma * config.lam * last_gae
        advantages[:, t] = last_gae
    advantages = advantages * mask
    returns = advantages + values
    advantages = _masked_whiten(advantages, mask) * mask

    # ---- 6. PPO epochs ------------------------------------------------------------------
    policy.train(True)
    generator = torch.Generator().manual_seed(derived_seed(config.seed, step, 1))
    minibatch = config.batch_size // config.num_mini_batches
    stat_names = ("policy_loss", "value_loss", "clip_fraction", "value_clip_fraction", "approx_kl", "loss")
    stats: dict[str, list[float]] = {name: [] for name in stat_names}
    params = policy.trainable_parameters()
    for _epoch in range(config.num_ppo_epochs):
        order = torch.randperm(config.batch_size, generator=generator).to(device)
        for start in range(0, config.batch_size, minibatch):
            batch_index = order[start : start + minibatch]
            optimizer.zero_grad(set_to_none=True)
            mb_tokens = mask[batch_index].sum().clamp(min=1.0)
            for micro_start in range(0, minibatch, micro):
                index = batch_index[micro_start : micro_start + micro]
                m = mask[index]
                with autocast():
                    logits, new_values = policy.forward(input_ids[index], attention_mask[index], context_length, config.temperature)
                new_logprobs = _token_logprobs(logits, responses[index])
                entropy = _entropy(logits)
                new_values = new_values.float()

                log_ratio = (new_logprobs - logprobs[index]) * m
                ratio = torch.exp(log_ratio)
                adv = advantages[index]
                pg_losses = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1.0 - config.cliprange, 1.0 + config.cliprange))
                clipped_values = values[index] + torch.clamp(new_values - values[index], -config.cliprange_value, config.cliprange_value)
                vf_unclipped = (new_values - returns[index]) ** 2
                vf_clipped = (clipped_values - returns[index]) ** 2
                # Token sums divided by the minibatch's token count: micro-batches add up to the
                # minibatch's token mean whatever their split.
                pg_loss = (pg_losses * m).sum() / mb_tokens
                vf_loss = 0.5 * (torch.max(vf_unclipped, vf_clipped) * m).sum() / mb_tokens
                entropy_term = (entropy * m).sum() / mb_tokens
                loss = pg_loss + config.vf_coef * vf_loss - config.entropy_coef * entropy_term
                if not torch.isfinite(loss):
                    raise TrainingDiverged(divergence_message(step))
                loss.backward()
                with torch.no_grad():
                    stats["policy_loss"].append(float(pg_loss))
                    stats["value_loss"].append(float(vf_loss))
                    stats["loss"].append(float(loss))
                    clipped = ((ratio - 1.0).abs() > config.cliprange).float()
                    stats["clip_fraction"].append(float((clipped * m).sum() / mb_tokens))
                    value_clipped = (vf_clipped > vf_unclipped).float()
                    stats["value_clip_fraction"].append(float((value_clipped * m).sum() / mb_tokens))
                    stats["approx_kl"].append(float((0.5 * log_ratio**2 * m).sum() / mb_tokens))
            if config.max_grad_norm > 0:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                if not torch.isfinite(grad_norm):
                    raise TrainingDiverged(divergence_message(step))
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    # Micro-batch values are parts of a minibatch sum; sum per minibatch, then average minibatches.
    per_update = config.num_ppo_epochs * config.num_mini_batches
    summed = {key: sum(values_) / per_update for key, values_ in stats.items()}

    sequence_kl = kl.sum(1)
    metrics = {
        "reward": float(scores.mean()),
        "score": float(penalised.mean()),
        "kl": float(sequence_kl.mean()),
        "non_score_reward": float(non_score.sum(1).mean()),
        "rlhf_reward": float((penalised + non_score.sum(1)).mean()),
        "entropy": float(rollout_entropy),
        "clip_fraction": summed["clip_fraction"],
        "approx_kl": summed["approx_kl"],
        "policy_loss": summed["policy_loss"],
        "value_loss": summed["value_loss"],
        "value_clip_fraction": summed["value_clip_fraction"],
        "loss": summed["loss"],
        "kl_coef": float(kl_coef),
        "response_length": float(lengths.float().mean()),
        "eos_fraction": float(has_eos.float().mean()),
        "learning_rate": float(lr),
        "_seconds": time.monotonic() - started,
    }
    tokens = int(attention_mask.sum())
    return metrics, tokens


def _mask_after_eos(responses: torch.Tensor, eos_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mask of tokens up to and including the first EOS, has-EOS flags, valid lengths)."""
    import torch

    is_eos = torch.isin(responses, torch.tensor(eos_ids, device=responses.device))
    has_eos = is_eos.any(dim=1)
    width = responses.shape[1]
    first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), torch.full_like(has_eos, width - 1, dtype=torch.long))
    positions = torch.arange(width, device=responses.device).unsqueeze(0)
    mask = positions <= first_eos.unsqueeze(1)
    return mask, has_eos, mask.sum(dim=1)


def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    import torch

    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    import torch

    mean = _masked_mean(values, mask)
    variance = _masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(variance + 1e-8)
    return whitened if shift_mean else whitened + mean


def _left_pad(rows: Sequence[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[index, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def _chunks(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def _encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: Conversation) -> list[int]:
    encoded = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)
    return list(encoded["input_ids"])


def _eos_ids(tokenizer: PreTrainedTokenizerBase, lm: Any) -> list[int]:
    # Every EOS the model declares (e.g. an end-of-turn token) ends a response, not only the tokenizer's.
    declared = lm.generation_config.eos_token_id
    ids = [declared] if isinstance(declared, int) else list(declared or [])
    if tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    return ids


def _prompt_indices(config: PPOConfig, prompt_count: int, step: int) -> list[int]:
    """Prompts of `step` (1-based): consecutive slices of per-epoch seeded permutations.

    Pure function of (seed, step), so a resumed run needs no sampler state.
    """
    import random

    start = (step - 1) * config.batch_size
    indices = []
    for position in range(start, start + config.batch_size):
        epoch, offset = divmod(position, prompt_count)
        order = list(range(prompt_count))
        random.Random(derived_seed(config.seed, epoch, 2)).shuffle(order)
        indices.append(order[offset])
    return indices


def _learning_rate(config: PPOConfig, step: int, total_steps: int) -> float:
    """Learning rate of PPO step `step` (1-based): linear warmup, then linear / cosine decay or constant."""
    warmup = int(config.warmup_ratio * total_steps)
    if warmup and step <= warmup:
        return config.learning_rate * step / warmup
    if config.lr_scheduler_type == "constant":
        return config.learning_rate
    # Step 1 trains at the full rate and the last step at a small but non-zero one.
    progress = (step - 1 - warmup) / max(1, total_steps - warmup)
    if config.lr_scheduler_type == "cosine":
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.learning_rate * (1.0 - progress)


def _adaptive_kl(kl_coef: float, observed_kl: float, config: PPOConfig) -> float:
    """Ziegler et al. 2019's proportional controller: move β so the KL approaches `kl_target`."""
    error = min(max(observed_kl / config.kl_target - 1.0, -0.2), 0.2)
    return kl_coef * (1.0 + error * config.batch_size / config.kl_horizon)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


@dataclass
class _LoopState:
    kl_coef: float
    step: int
    log_history: list[dict[str, float]]


def _save_checkpoint(
    run: RunDir, config: PPOConfig, state: _LoopState, policy: _PolicyWithValueHead, optimizer: torch.optim.Optimizer
) -> None:
    """Write checkpoint-N atomically (temp folder + rename), then drop checkpoints beyond the limit.

    Contents: trainable weights (the adapter with LoRA) and value head as safetensors, optimizer
    state, and the loop state (step, KL coefficient, metric history) as trainer_state.json. RNG
    state is not needed: sampling and minibatch order derive from (seed, step).
    """
    import torch
    from safetensors.torch import save_file

    final = run.checkpoints_dir / f"{CHECKPOINT_PREFIX}{state.step}"
    if final.exists():
        return
    tmp = run.checkpoints_dir / f"{CHECKPOINT_PREFIX}tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in policy.named_trainable_tensors().items()}
    save_file(tensors, str(tmp / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / CHECKPOINT_COMPLETE_MARKER).write_text(
        json.dumps(
            {
                "global_step": state.step,
                "kl_coef": state.kl_coef,
                "log_history": state.log_history,
                "config": config.to_dict(),
            },
            indent=2,
        )
    )
    os.rename(tmp, final)
    existing = sorted(
        (int(path.name[len(CHECKPOINT_PREFIX) :]), path)
        for path in run.checkpoints_dir.iterdir()
        if path.name[len(CHECKPOINT_PREFIX) :].isdigit()
    )
    for _step, path in existing[: max(0, len(existing) - config.save_total_limit)]:
        shutil.rmtree(path, ignore_errors=True)


def _load_checkpoint(path: Path, policy: _PolicyWithValueHead, optimizer: torch.optim.Optimizer) -> _LoopState:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(path / "trainable.safetensors"))
    targets = policy.named_trainable_tensors()
    missing = sorted(set(targets) - set(tensors))
    if missing:
        raise ValueError(f"{path} does not match this model (missing {missing[:3]}...)")
    with torch.no_grad():
        for name, target in targets.items():
            target.copy_(tensors[name].to(target.device, target.dtype))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=policy.device, weights_only=True))
    saved = json.loads((path / CHECKPOINT_COMPLETE_MARKER).read_text())
    return _LoopState(kl_coef=float(saved["kl_coef"]), step=int(saved["global_step"]), log_history=list(saved["log_history"]))


def _save_policy(policy: _PolicyWithValueHead, target: Path, base_model: Path) -> None:
    # The value head is a training aid, not part of the policy version.
    save_model_weights(policy.model, target, base_model=base_model)
