"""Run the prompt of a preference pair once, not twice.

A DPO batch holds, for B pairs, the rows prompt+chosen (rows 0..B-1) and prompt+rejected (rows
B..2B-1). TRL runs all 2B rows through the network, so every prompt is processed twice by the
policy and twice more by the reference. In multi-turn data such as HH-RLHF the prompt is most of
each row (a conversation, then one answer), so most of that work is repeated.

`install_shared_prefix_forward` wraps a causal LM whose forward TRL has given a fused LM head
(`trl.trainer.utils.add_fused_lm_head`). On a call with `fused_lm_head=True` whose rows have that
layout, it

1. runs the B prompts once, left-padded so that they all end at the same column, keeping their
   key/value cache (with gradients: the prompt still learns through both answers);
2. runs the 2B answers on top of that cache, each prompt's cache used by its two answers;
3. projects through the LM head only the answer positions (TRL's CPU path projects every
   position) with TRL's own chunked log-prob kernel, and puts the results back where TRL's forward
   would have put them.

The result is the same `FusedCausalLMOutput` TRL's forward returns, equal to it up to float
rounding (tests/rlhf_training/test_shared_prefix.py compares values and gradients). Batches that
do not have the layout (rows whose prompts differ, rows with no answer tokens), models with a logit
scale or soft-capping, and MoE router losses fall through to TRL's forward unchanged.

`install_shared_prefix_scoring` does the same for a reward model (a sequence classifier): the two
conversations of a pair share their start, which runs once; each row's score is read where the
model's own forward reads it.

What it saves: with prompt length p and answer length c per row, the network processes p + 2c
tokens per pair instead of 2p + 2c, and the DPO LM head 2c positions instead of 2(p + c). On
SmolLM2 with HH-RLHF pairs (p ~ 180, c ~ 40) one DPO forward and backward takes a third of the
time of TRL's.
"""

from __future__ import annotations

import types
from typing import Any


def usable(config: Any) -> bool:
    """Whether a run's config allows the shared path: it needs the key/value cache, which
    gradient checkpointing turns off, and whole parameters, which FSDP shards."""
    return config.shared_prefix and not config.gradient_checkpointing and config.distributed_strategy != "fsdp"


def module_to_wrap(trainer: Any, model: Any) -> Any:
    """The module whose forward does the work: `model` without accelerate's and PEFT's wrappers
    (the LoRA layers live inside the base model's modules)."""
    model = trainer.accelerator.unwrap_model(model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def install_shared_prefix_forward(model: Any, outputs: tuple[str, ...] = ("log_probs",)) -> None:
    """Wrap `model.forward` (already given TRL's fused LM head) with the shared-prefix path.

    `outputs` are the per-token fields to compute, as passed to `add_fused_lm_head`.
    """
    import torch
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE, FusedCausalLMOutput, _ChunkedLogProbFunction

    fused_forward = model.forward
    text_config = model.config.get_text_config()
    scaled = any(
        getattr(text_config, name, None) is not None
        for name in ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")
    )
    if scaled or getattr(text_config, "output_router_logits", False):
        return  # TRL's forward handles these; the shared path does not reproduce them

    def forward(self, *args: Any, fused_lm_head: bool = False, labels: Any = None, **kwargs: Any) -> Any:
        layout = None
        if fused_lm_head and labels is not None and not args and not kwargs.get("output_router_logits"):
            layout = _pair_layout(kwargs.get("input_ids"), kwargs.get("attention_mask"), labels, kwargs)
        if layout is None:
            return fused_forward(*args, fused_lm_head=fused_lm_head, labels=labels, **kwargs)

        input_ids = kwargs["input_ids"]
        prompt_out, answer_ids, answer_mask, answer_hidden = run_shared_prefix(self.base_model, input_ids, *layout)
        both = torch.arange(input_ids.size(0) // 2, device=input_ids.device).repeat(2)

        # 3. Answer token j is predicted by the hidden state before it: the prompt's last for j = 0.
        last_prompt = prompt_out.last_hidden_state[:, -1:][both]
        predictors = torch.cat([last_prompt, answer_hidden[:, :-1]], dim=1)
        lm_head = self.get_output_embeddings()
        per_token = _ChunkedLogProbFunction.apply(
            predictors[answer_mask].to(lm_head.weight.device),
            lm_head.weight,
            lm_head.bias,
            answer_ids[answer_mask].to(lm_head.weight.device),
            1.0,
            _CHUNKED_LOGPROB_CHUNK_SIZE,
            None,
            1.0,
            outputs,
        )
        mask = labels[:, 1:] != -100  # answer tokens in TRL's shifted layout, same row-major order
        log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = (
            None if x is None else x.new_zeros(mask.shape).masked_scatter(mask, x) for x in per_token
        )
        loss = -log_probs.sum() / mask.sum().clamp(min=1)
        return FusedCausalLMOutput(
            loss=loss,
            log_probs=log_probs,
            entropy=entropy,
            log_sum_sq_probs=log_sum_sq_probs,
            mean_logits=mean_logits,
            is_top1=is_top1,
            label_mask=mask,
            aux_loss=None,
        )

    model.forward = types.MethodType(forward, model)


def install_shared_prefix_scoring(model: Any) -> None:
    """Wrap the forward of a sequence classifier (reward model) with the shared-prefix path.

    A reward batch is B chosen conversations then B rejected ones, right-padded; each pair's two
    conversations share everything up to the answer. The shared tokens run once; each row's score
    is read where the model's own forward reads it (the rightmost token that is not the pad token),
    which is always past the shared part (the shared part is cut short where needed).
    """
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutputWithPast

    scoring_forward = model.forward

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        layout = None if args or kwargs.get("labels") is not None else _scoring_layout(self, kwargs)
        if layout is None:
            return scoring_forward(*args, **kwargs)
        input_ids = kwargs["input_ids"]
        shared_len, rest_len, read_at = layout
        _, _, _, rest_hidden = run_shared_prefix(self.base_model, input_ids, shared_len, rest_len)
        rows = torch.arange(input_ids.size(0), device=input_ids.device)
        scores = self.score(rest_hidden[rows, read_at - shared_len.repeat(2)])
        return SequenceClassifierOutputWithPast(logits=scores)

    model.forward = types.MethodType(forward, model)


def _scoring_layout(model: Any, kwargs: dict) -> tuple[Any, Any, Any] | None:
    """(shared length per pair, rest length per row, read position per row) of a reward batch, or None."""
    import torch

    input_ids, attention_mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
    pad_id = model.config.get_text_config().pad_token_id
    if pad_id is None or input_ids is None or attention_mask is None or input_ids.dim() != 2 or input_ids.size(0) % 2:
        return None
    if not _plain_text_call(kwargs):
        return None
    column = torch.arange(input_ids.size(1), device=input_ids.device).unsqueeze(0)
    real = _right_padded(attention_mask, column)
    if real is None:
        return None
    length = real.sum(dim=1)
    # Where the classifier reads each row: its rightmost non-pad token (GenericForSequenceClassification).
    read_at = (column * (input_ids != pad_id)).argmax(dim=1)
    pairs = input_ids.size(0) // 2
    differs = (input_ids[:pairs] != input_ids[pairs:]) | ~real[:pairs] | ~real[pairs:]
    common = torch.where(differs.any(dim=1), differs.int().argmax(dim=1), torch.full_like(length[:pairs], input_ids.size(1)))
    shared = torch.minimum(common, torch.minimum(read_at[:pairs], read_at[pairs:]))
    if not bool((shared > 0).all()):
        return None
    return shared, length - shared.repeat(2), read_at


def run_shared_prefix(backbone: Any, input_ids: Any, prefix_len: Any, rest_len: Any) -> tuple[Any, Any, Any, Any]:
    """Run rows 0..B-1 and B..2B-1 of `input_ids`, which share their first `prefix_len[i]` tokens,
    with each shared prefix run once.

    `rest_len` is each row's length after its prefix (2B values). Returns the prefix forward's
    output (its `last_hidden_state` is [B, longest prefix, H], prefixes left-padded so they end in
    the last column), then the rests as [2B, longest rest] ids and mask (right-padded) and their
    hidden states. Gradients reach the prefix through the key/value cache.
    """
    import torch

    pairs = input_ids.size(0) // 2
    longest_prefix, longest_rest = int(prefix_len.max()), int(rest_len.max())
    device = input_ids.device

    # 1. The prefixes, left-padded to end together; positions count real tokens only.
    column = torch.arange(longest_prefix, device=device)
    source = column.unsqueeze(0) - (longest_prefix - prefix_len).unsqueeze(1)  # index into the row
    prefix_mask = source >= 0
    prefix_ids = input_ids[:pairs].gather(1, source.clamp(min=0)).masked_fill(~prefix_mask, 0)
    prefix_out = backbone(
        input_ids=prefix_ids,
        attention_mask=prefix_mask.long(),
        position_ids=source.clamp(min=0),
        use_cache=True,
    )
    cache = prefix_out.past_key_values
    both = torch.arange(pairs, device=device).repeat(2)  # row r of 2B continues prefix r mod B
    cache.batch_select_indices(both)

    # 2. The rests on the shared cache, right-padded.
    step = torch.arange(longest_rest, device=device)
    rest_mask = step.unsqueeze(0) < rest_len.unsqueeze(1)
    rest_pos = prefix_len.repeat(2).unsqueeze(1) + step.unsqueeze(0)
    rest_ids = input_ids.gather(1, rest_pos.clamp(max=input_ids.size(1) - 1)).masked_fill(~rest_mask, 0)
    rest_out = backbone(
        input_ids=rest_ids,
        attention_mask=torch.cat([prefix_mask[both], rest_mask], dim=1).long(),
        position_ids=rest_pos,
        past_key_values=cache,
        use_cache=True,
    )
    return prefix_out, rest_ids, rest_mask, rest_out.last_hidden_state


def _pair_layout(input_ids: Any, attention_mask: Any, labels: Any, kwargs: dict) -> tuple[Any, Any] | None:
    """(prompt length per pair, answer length per row) when the batch is B chosen rows then B
    rejected rows of the same B prompts, each row prompt + answer + right padding; else None."""
    import torch

    if input_ids is None or attention_mask is None or input_ids.dim() != 2 or input_ids.size(0) % 2:
        return None
    if not _plain_text_call(kwargs):
        return None
    answer = labels != -100
    if not bool(answer.any(dim=1).all()):
        return None
    pairs = input_ids.size(0) // 2
    start = answer.int().argmax(dim=1)  # first answer token of each row
    if not torch.equal(start[:pairs], start[pairs:]) or not bool((start > 0).all()):
        return None  # prompts of different lengths, or an answer with no prompt to predict it from
    column = torch.arange(input_ids.size(1), device=input_ids.device).unsqueeze(0)
    real = _right_padded(attention_mask, column)
    if real is None:
        return None
    if not torch.equal(answer, real & (column >= start.unsqueeze(1))):
        return None  # the answer is not everything after the prompt
    in_prompt = column < start[:pairs].unsqueeze(1)
    if not torch.equal(input_ids[:pairs][in_prompt], input_ids[pairs:][in_prompt]):
        return None
    return start[:pairs], real.sum(dim=1) - start


def _right_padded(attention_mask: Any, column: Any) -> Any:
    """The mask as booleans when every row is its real tokens then padding; else None."""
    import torch

    real = attention_mask.bool()
    return real if torch.equal(real, column < real.sum(dim=1, keepdim=True)) else None


def _plain_text_call(kwargs: dict) -> bool:
    """Only token ids and a padding mask; position ids, embeddings, images... fall through.

    PEFT's wrappers pass their other arguments explicitly, as None, and return_dict=True.
    """
    return all(
        value is None or (key == "return_dict" and value is True)
        for key, value in kwargs.items()
        if key not in ("input_ids", "attention_mask", "use_cache")
    )
