"""Sample K responses per conversation from a policy, in batches, reproducibly and resumably.

The generator feeds the annotation queue (K candidates per prompt become comparison pairs) and
the online trainers. Three properties matter more than raw speed:

* **Reproducible and resumable.** A Celery task writes each yielded batch to disk; after a crash
  it calls again with only the conversations that are missing, under their original ids. The
  batches of that second call differ from the first (we sort by length within a call), so a seed
  per batch would change the text. Instead every random draw is a pure function of
  `(sampling.seed, conversation id, sample number, token position)`: the uniform number that
  picks token t of sample j of conversation i is a hash of those four values. The same
  conversation under the same id gets the same text no matter which other conversations share
  its batch, how the work was split, or whether the torch RNG was touched in between. (On a
  GPU in bf16, batch composition can still change logits in the last bit, which very rarely
  flips a near-tie; on CPU in float32 results are identical.)
* **Faithful to the policy.** Sampling is plain temperature / top-k / top-p on the model's
  logits. A model's own `generation_config.json` (repetition penalties, suppressed tokens...)
  is ignored while we generate, because RLHF needs samples from the policy's distribution and
  those settings would silently change it.
* **Efficient.** Left padding with an attention mask, KV cache (`use_cache=True`), prompts
  sorted by length so a batch pads little, and greedy decoding (temperature 0) decodes each
  prompt once and repeats the answer K times. The batch holds `batch_size` sequences unless
  memory is short: `memory_batch_limit` lowers it so the KV cache of the longest sequence fits
  (see there for the heuristic). `benchmarks/generation_throughput.py` measures the gain over a
  one-prompt-at-a-time loop.

torch and transformers are imported lazily so that the web process can import `SamplingConfig`
and `validate_conversations` to check user input without loading torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rlhf.config import Config, option
from rlhf.progress import NullControl, RunCancelled, RunControl

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ROLES = ("system", "user", "assistant")
MAX_NEW_TOKENS_LIMIT = 4096
INT64_LIMIT = 1 << 63  # seeds and conversation ids are hashed as signed 64-bit integers


@dataclass
class SamplingConfig(Config):
    """How responses are sampled, everywhere: generation runs, evaluation, campaigns, rounds and
    the playground. Stored with every generation run together with `config_hash()`."""

    kind: ClassVar[str] = "sampling"

    temperature: float = option(
        0.7, min=0.0, max=5.0, help="Softmax temperature. 0 means greedy decoding (the K samples of a prompt are then identical)."
    )
    top_p: float = option(
        0.95,
        min=0.0,
        max=1.0,
        min_exclusive=True,
        help="Nucleus sampling: keep the most likely tokens whose mass reaches top_p; 1 disables it.",
    )
    top_k: int = option(50, min=0, max=100_000, help="Keep only the top_k most likely tokens; 0 disables it.")
    max_new_tokens: int = option(
        128, min=1, max=MAX_NEW_TOKENS_LIMIT, help="Longest response in tokens; responses that hit it without EOS are marked truncated."
    )
    seed: int = option(
        0,
        min=0,
        max=INT64_LIMIT - 1,
        help="Root of every random draw: same seed and conversation ids give the same text, whatever the batching or a resume.",
    )
    batch_size: int = option(
        16,
        min=1,
        max=256,
        help="Sequences decoded together. With K samples per prompt a batch holds max(1, batch_size // K) prompts, so memory stays bounded.",
    )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


Conversation = list[dict[str, str]]


def validate_conversations(conversations: Sequence[Conversation]) -> None:
    """Check the chat format; errors name the conversation index (and turn) at fault.

    A conversation is a non-empty list of `{"role": "system"|"user"|"assistant", "content": str}`
    ending with a user turn, since we generate the assistant's next reply.
    """
    if isinstance(conversations, (str, bytes)) or not isinstance(conversations, Sequence):
        raise ValueError("conversations must be a list of conversations")
    for index, conversation in enumerate(conversations):
        if not isinstance(conversation, list) or not conversation:
            raise ValueError(f"conversation {index}: must be a non-empty list of messages")
        for turn, message in enumerate(conversation):
            if not isinstance(message, dict):
                raise ValueError(f"conversation {index}, message {turn}: must be a dict with 'role' and 'content'")
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise ValueError(f"conversation {index}, message {turn}: role must be one of {ROLES}, got {role!r}")
            if not isinstance(content, str):
                raise ValueError(f"conversation {index}, message {turn}: content must be a string")
            extra = set(message) - {"role", "content"}
            if extra:
                raise ValueError(f"conversation {index}, message {turn}: unexpected keys {sorted(extra)}")
        if conversation[-1]["role"] != "user":
            raise ValueError(f"conversation {index}: must end with a user message, ends with {conversation[-1]['role']!r}")


@dataclass
class GeneratedBatch:
    """One batch of results, yielded as soon as it is decoded so the caller can persist it.

    Attributes:
        indices: The caller's ids of the conversations in this batch (not input positions).
        responses: K response strings per conversation, aligned with `indices`; special tokens
            removed, surrounding whitespace stripped.
        new_tokens: Tokens actually decoded for this batch up to and including EOS (greedy
            prompts count once even though their answer is repeated K times).
        seconds: Wall time spent generating this batch.
        truncated: Per response, True when it stopped at `max_new_tokens` without an EOS.
    """

    indices: list[int]
    responses: list[list[str]]
    new_tokens: int
    seconds: float
    truncated: list[list[bool]] = field(default_factory=list)


def iter_generate(
    model_path: Path | str | None,
    conversations: Sequence[Conversation],
    k: int,
    sampling: SamplingConfig,
    control: RunControl | None = None,
    indices: Sequence[int] | None = None,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Iterator[GeneratedBatch]:
    """Generate `k` responses for each conversation, yielding one `GeneratedBatch` per batch.

    `model_path` is a local model folder (turn a `builtin:` URI into one with
    `rlhf.models.resolve_model_path`); it is loaded with `load_policy` unless `model` and
    `tokenizer` are given together (a trainer reusing its policy), in which case the model is used
    as is (put it in eval mode yourself if it has dropout). `indices` are stable ids of the
    conversations (default: their positions); pass the same ids when resuming to get the same
    text. After each batch is consumed, `control.report(done, total, {"tokens_per_s": ...})` is
    called; when `control.should_stop()` turns true the next batch is not started and
    `RunCancelled` is raised, so every yielded batch is complete.

    Arguments are checked when this is called, not when iteration starts, so a bad request fails
    before a model is loaded.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not isinstance(sampling, SamplingConfig):
        raise TypeError("sampling must be a SamplingConfig")
    validate_conversations(conversations)
    ids = _check_indices(indices, len(conversations))
    if (model is None) != (tokenizer is None):
        raise ValueError("pass both model and tokenizer, or neither (then model_path is loaded)")
    if model is None and model_path is None:
        raise ValueError("model_path is required when no model is passed")
    if not conversations:
        return iter(())
    return _generate_batches(model_path, conversations, k, sampling, control or NullControl(), ids, model, tokenizer)


def _generate_batches(
    model_path: Path | str | None,
    conversations: Sequence[Conversation],
    k: int,
    sampling: SamplingConfig,
    control: RunControl,
    ids: list[int],
    model: PreTrainedModel | None,
    tokenizer: PreTrainedTokenizerBase | None,
) -> Iterator[GeneratedBatch]:
    import torch

    if model is None:
        from rlhf.models import load_policy

        assert model_path is not None
        model, tokenizer = load_policy(model_path)
    assert tokenizer is not None
    if not tokenizer.chat_template:
        raise ValueError("the tokenizer has no chat template; generation needs one to format conversations")

    eos_ids = _eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    device = next(model.parameters()).device
    limit = getattr(model.config, "max_position_embeddings", None)

    prompts: list[list[int]] = []
    for position, conversation in enumerate(conversations):
        text = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        token_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if limit is not None and len(token_ids) + sampling.max_new_tokens > limit:
            raise ValueError(
                f"conversation {position}: {len(token_ids)} prompt tokens + max_new_tokens "
                f"{sampling.max_new_tokens} exceed the model's {limit} positions"
            )
        prompts.append(token_ids)

    samples_per_prompt = 1 if sampling.greedy else k
    longest = max(len(prompt) for prompt in prompts) + sampling.max_new_tokens
    rows_per_batch = min(sampling.batch_size, memory_batch_limit(model, longest))
    if rows_per_batch < sampling.batch_size:
        control.log(
            f"batch size {sampling.batch_size} lowered to {rows_per_batch} to fit sequences of {longest} tokens "
            f"in the memory available on {device}"
        )
    prompts_per_batch = max(1, rows_per_batch // samples_per_prompt)
    # Longest first: padding is minimal within a batch, and an out-of-memory error shows up on
    # the first batch instead of hours in. Ties keep input order so batching is deterministic.
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    batches = [order[start : start + prompts_per_batch] for start in range(0, len(order), prompts_per_batch)]
    total = len(prompts)
    control.log(
        f"generating {k} response(s) for {total} conversation(s) in {len(batches)} batch(es) on {device}"
        f" (sampling {sampling.config_hash()[:12]})"
    )

    done = 0
    for batch in batches:
        if control.should_stop():
            raise RunCancelled(f"generation stopped after {done} of {total} conversations")
        started = time.perf_counter()
        rows = [(ids[i], sample) for i in batch for sample in range(samples_per_prompt)]
        row_prompts = [prompts[i] for i in batch for _ in range(samples_per_prompt)]
        input_ids, attention_mask = _left_pad(row_prompts, pad_id, device)
        sampler = None if sampling.greedy else _CounterSampler(sampling, rows, input_ids.shape[1])
        with torch.inference_mode(), _plain_generation_config(model, eos_ids, pad_id, tokenizer.bos_token_id):
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=_generation_config(sampling, eos_ids, pad_id),
                logits_processor=_processor_list(sampler),
            )
        new = output[:, input_ids.shape[1] :].tolist()
        texts, stopped_early, new_tokens = _decode_rows(new, eos_ids, tokenizer)
        seconds = time.perf_counter() - started

        responses: list[list[str]] = []
        truncated: list[list[bool]] = []
        for position in range(len(batch)):
            chunk = slice(position * samples_per_prompt, (position + 1) * samples_per_prompt)
            texts_here, stops_here = texts[chunk], stopped_early[chunk]
            if sampling.greedy:
                texts_here, stops_here = texts_here * k, stops_here * k
            responses.append(texts_here)
            truncated.append([not stopped for stopped in stops_here])

        yield GeneratedBatch(
            indices=[ids[i] for i in batch],
            responses=responses,
            new_tokens=new_tokens,
            seconds=seconds,
            truncated=truncated,
        )
        done += len(batch)
        control.report(done, total, {"tokens_per_s": new_tokens / max(seconds, 1e-9), "new_tokens": float(new_tokens)})


def generate(
    model_path: Path | str | None,
    conversations: Sequence[Conversation],
    k: int,
    sampling: SamplingConfig,
    control: RunControl | None = None,
    indices: Sequence[int] | None = None,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> list[list[str]]:
    """`iter_generate` collected into K responses per conversation, in input order."""
    ids = _check_indices(indices, len(conversations))
    position = {conversation_id: i for i, conversation_id in enumerate(ids)}
    results: list[list[str] | None] = [None] * len(conversations)
    for batch in iter_generate(model_path, conversations, k, sampling, control, ids, model, tokenizer):
        for conversation_id, responses in zip(batch.indices, batch.responses, strict=True):
            results[position[conversation_id]] = responses
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


# --------------------------------------------------------------------------------------------
# Sizing batches by memory
# --------------------------------------------------------------------------------------------

MEMORY_FRACTION_CUDA = 0.6
"""Share of the GPU's *free* memory (after the weights are loaded) one batch may use."""
MEMORY_FRACTION_CPU = 0.25
"""Share of the machine's available RAM one batch may use (the web, other workers live there too)."""
ACTIVATION_FACTOR = 2.0
"""Headroom over the KV cache for activations, logits and allocator slack: a conservative
allowance (the prefill step's activations are the largest extra, about one KV cache's worth)."""


def kv_cache_bytes_per_token(model: PreTrainedModel) -> int:
    """Bytes of KV cache one sequence needs per token: 2 (K and V) x layers x KV heads x head
    dim x element size. Falls back to hidden size when the config has no head layout."""
    config = model.config
    layers = int(getattr(config, "num_hidden_layers", 1) or 1)
    heads = int(getattr(config, "num_attention_heads", 1) or 1)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    hidden = int(getattr(config, "hidden_size", 1) or 1)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    element = next(model.parameters()).element_size()
    return 2 * layers * kv_heads * head_dim * element


def available_memory_bytes(device: Any) -> int | None:
    """Free memory a batch may use on `device`: CUDA free memory, else MemAvailable from
    /proc/meminfo; None when it cannot be read (then the batch size is not capped)."""
    try:
        if getattr(device, "type", str(device)) == "cuda":
            import torch

            free, _total = torch.cuda.mem_get_info(device)
            return int(free * MEMORY_FRACTION_CUDA)
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * MEMORY_FRACTION_CPU)
    except (OSError, RuntimeError, ValueError, IndexError):
        return None
    return None


def memory_batch_limit(model: PreTrainedModel, sequence_tokens: int, available: int | None = None) -> int:
    """How many sequences of `sequence_tokens` tokens fit in one batch (at least 1).

    Heuristic: a sequence costs its KV cache (`kv_cache_bytes_per_token` x tokens) plus one row
    of float32 logits over the vocabulary, times `ACTIVATION_FACTOR` for activations and slack;
    the budget is `available_memory_bytes` (60% of free GPU memory, 25% of available RAM). The
    configured `batch_size` stays the upper bound; this only lowers it when memory is short, so
    a long `max_new_tokens` on a small GPU degrades to smaller batches instead of running out of
    memory. Sampled text does not depend on how prompts are batched (see the module docstring).
    """
    if available is None:
        available = available_memory_bytes(next(model.parameters()).device)
    if available is None:
        return 1 << 30
    vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    per_sequence = (kv_cache_bytes_per_token(model) * max(1, sequence_tokens) + 4 * vocab) * ACTIVATION_FACTOR
    return max(1, int(available // per_sequence))


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _check_indices(indices: Sequence[int] | None, count: int) -> list[int]:
    if indices is None:
        return list(range(count))
    ids = list(indices)
    if len(ids) != count:
        raise ValueError(f"indices has {len(ids)} entries for {count} conversations")
    for position, value in enumerate(ids):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"indices[{position}] must be an int, got {value!r}")
        if not (-INT64_LIMIT <= value < INT64_LIMIT):
            raise ValueError(f"indices[{position}] does not fit in 64 bits: {value!r}")
    if len(set(ids)) != len(ids):
        raise ValueError("indices must be unique (they name conversations in results and seeds)")
    return ids


def _eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS plus those in the model's generation config."""
    found: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for candidate in [tokenizer.eos_token_id, *(configured if isinstance(configured, list) else [configured])]:
        if isinstance(candidate, int) and candidate not in found:
            found.append(candidate)
    if not found:
        raise ValueError("neither the tokenizer nor the model defines an EOS token; generation could not stop")
    return found


def _left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-align prompts so every row's next token is at the same column (decoder-only models)."""
    import torch

    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, width - len(row) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _generation_config(sampling: SamplingConfig, eos_ids: list[int], pad_id: int) -> Any:
    from transformers import GenerationConfig

    # do_sample=False on purpose: when sampling, `_CounterSampler` has already chosen the token
    # and masked every other one, so HF's argmax just reads its choice.
    return GenerationConfig(
        max_new_tokens=sampling.max_new_tokens,
        do_sample=False,
        num_beams=1,
        num_return_sequences=1,
        use_cache=True,
        eos_token_id=eos_ids,
        pad_token_id=pad_id,
    )


def _processor_list(sampler: _CounterSampler | None) -> Any:
    from transformers import LogitsProcessorList

    return LogitsProcessorList([sampler] if sampler is not None else [])


@contextlib.contextmanager
def _plain_generation_config(model: PreTrainedModel, eos_ids: list[int], pad_id: int, bos_id: int | None) -> Iterator[None]:
    """Hide the model's own generation defaults while we generate.

    `generate` fills every unset option from `model.generation_config`, so a checkpoint shipping
    e.g. `repetition_penalty: 1.2` would reshape the distribution we sample from. PEFT wrappers
    forward `generate` to the base model, whose config is the one that counts.
    """
    from transformers import GenerationConfig

    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    saved = target.generation_config
    target.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_ids, pad_token_id=pad_id)
    try:
        yield
    finally:
        target.generation_config = saved


class _CounterSampler:
    """A logits processor that samples each row from its own counter-based random stream.

    For row (conversation id i, sample j) at new-token position t, the uniform number comes from
    `rlhf.sampling.counter_uniforms` and the token from `rlhf.sampling.sample` (temperature,
    top-k, top-p, inverse CDF). Returning scores that are -inf everywhere but the chosen token
    lets `generate` keep doing what it is good at (KV cache, EOS bookkeeping, padding finished
    rows) while the randomness stays ours.
    """

    def __init__(self, sampling: SamplingConfig, rows: list[tuple[int, int]], prompt_width: int) -> None:
        self.sampling = sampling
        self.rows = rows
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        from rlhf import sampling

        step = input_ids.shape[1] - self.prompt_width
        uniforms = torch.tensor(sampling.counter_uniforms(self.sampling.seed, self.rows, step), dtype=torch.float64)
        chosen = sampling.sample(
            scores,
            uniforms,
            temperature=float(self.sampling.temperature),
            top_k=self.sampling.top_k,
            top_p=float(self.sampling.top_p),
        )
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter_(-1, chosen, 0.0)


def _decode_rows(rows: list[list[int]], eos_ids: list[int], tokenizer: PreTrainedTokenizerBase) -> tuple[list[str], list[bool], int]:
    """Cut each row at its first EOS (generate pads after it), decode without special tokens."""
    stops = set(eos_ids)
    texts: list[str] = []
    stopped: list[bool] = []
    new_tokens = 0
    for row in rows:
        end = next((position for position, token in enumerate(row) if token in stops), None)
        kept = row if end is None else row[:end]
        new_tokens += len(row) if end is None else end + 1
        texts.append(str(tokenizer.decode(kept, skip_special_tokens=True)).strip())
        stopped.append(end is not None)
    return texts, stopped, new_tokens


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


@dataclass
class _StderrControl:
    """Progress on stderr so stdout carries only the output path."""

    def report(self, step: int, total: int, metrics: dict[str, Any] | None = None) -> None:
        speed = (metrics or {}).get("tokens_per_s", 0.0)
        print(f"[{step}/{total}] {speed:.1f} tokens/s", file=sys.stderr, flush=True)

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def should_stop(self) -> bool:
        return False


def read_prompts(path: Path) -> list[tuple[Conversation, dict[str, Any]]]:
    """Read a JSONL file of `{"messages": [...]}` or `{"prompt": "..."}` lines.

    Returns (conversation, the original record) pairs; blank lines are skipped and errors name
    the line number.
    """
    items: list[tuple[Conversation, dict[str, Any]]] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: each line must be a JSON object")
            if "messages" in record:
                conversation = record["messages"]
            elif isinstance(record.get("prompt"), str):
                conversation = [{"role": "user", "content": record["prompt"]}]
            else:
                raise ValueError(f'{path}:{number}: expected {{"messages": [...]}} or {{"prompt": "..."}}')
            try:
                validate_conversations([conversation])
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from None
            items.append((conversation, record))
    return items


def cli(argv: list[str]) -> int:
    """`python -m rlhf generate --model PATH_OR_BUILTIN --prompts IN.jsonl --k 2 --out OUT.jsonl`."""
    from rlhf.models import default_cache_dir

    defaults = SamplingConfig()
    parser = argparse.ArgumentParser(
        prog="python -m rlhf generate",
        description="Sample K responses per prompt. Output lines: {index, messages, responses, truncated, id?}.",
    )
    parser.add_argument("--model", required=True, help="model folder or builtin:smollm2-135m-instruct")
    parser.add_argument("--prompts", type=Path, required=True, help='JSONL of {"messages": [...]} or {"prompt": "..."}')
    parser.add_argument("--k", type=int, default=2, help="responses per prompt (default 2)")
    parser.add_argument("--out", type=Path, required=True, help="output JSONL (written atomically)")
    parser.add_argument("--temperature", type=float, default=defaults.temperature)
    parser.add_argument("--top-p", type=float, default=defaults.top_p)
    parser.add_argument("--top-k", type=int, default=defaults.top_k)
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--cache-dir", type=Path, default=None, help="artifact store for builtin models")
    args = parser.parse_args(argv)

    from rlhf.models import resolve_model_path

    try:
        sampling = SamplingConfig(
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            batch_size=args.batch_size,
        )
        items = read_prompts(args.prompts)
        model_path = resolve_model_path(args.model, args.cache_dir or default_cache_dir())
        conversations = [conversation for conversation, _ in items]
        results: dict[int, tuple[list[str], list[bool]]] = {}
        for batch in iter_generate(model_path, conversations, args.k, sampling, _StderrControl()):
            for index, responses, truncated in zip(batch.indices, batch.responses, batch.truncated, strict=True):
                results[index] = (responses, truncated)
    except (ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename, so a reader never sees half a file.
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=args.out.parent, prefix=f".{args.out.name}.", delete=False) as handle:
        try:
            for index, (conversation, record) in enumerate(items):
                line: dict[str, Any] = {
                    "index": index,
                    "messages": conversation,
                    "responses": results[index][0],
                    "truncated": results[index][1],
                    "sampling": sampling.to_dict(),
                }
                if "id" in record:
                    line["id"] = record["id"]
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
    os.replace(handle.name, args.out)
    print(args.out)
    return 0
