"""Pieces every training method shares: config base, data, models, LoRA, progress, checkpoints, artifacts.

Only what is genuinely common lives here; each method module (`reward`, `dpo`, `ppo`, `rloo`, `grpo`)
reads top to bottom and calls these helpers explicitly, so there is no registry or plugin layer.

The on-disk layout of one run (`out_dir`), shared by all methods:

    out_dir/run.json            identity of the run (method, config hash, data hash, base model); a
                                restart with a different config refuses to reuse the folder
    out_dir/checkpoints/        checkpoint-N/ every `save_steps` steps (a checkpoint is complete once
                                its `trainer_state.json` exists; incomplete ones are deleted)
    out_dir/_work/              scratch: merged parent weights, the final artifact while it is written
    out_dir/final/              the artifact: weights (or LoRA adapter) + tokenizer + manifest.json;
                                it appears only through an atomic rename, so its presence means done

A restarted call with the same arguments therefore either returns the finished artifact or resumes
from the latest complete checkpoint; a worker killed at any point never leaves a half-written `final/`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import rlhf
from rlhf.progress import NullControl, RunCancelled, RunControl

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer

Message = dict[str, str]
Conversation = list[Message]

CHECKPOINTS_DIR = "checkpoints"
WORK_DIR = "_work"
FINAL_DIR = "final"
RUN_FILE = "run.json"
MANIFEST_FILE = "manifest.json"
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_COMPLETE_MARKER = "trainer_state.json"  # written last by transformers' Trainer and by our PPO


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. Never retried automatically: the same config diverges again."""


class RewardFn(Protocol):
    """A reward function in TRL's calling convention, so one callable serves PPO, RLOO and GRPO.

    `prompts` are conversations (lists of messages), `completions` are one-message lists
    `[{"role": "assistant", "content": text}]`; extra keyword arguments (e.g. `completion_ids`,
    `trainer_state`) may be passed and must be accepted. Returns one float per completion.
    """

    def __call__(self, prompts: list[Conversation], completions: list[Conversation], **kwargs: Any) -> list[float]: ...


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


@dataclass
class BaseTrainConfig:
    """Fields every method shares. Each method's config subclasses this and documents its own fields.

    Attributes:
        seed: 0. Seeds Python, NumPy, torch and the data order; same seed, data and device -> same
            final weights and metrics on CPU.
        learning_rate: method-specific default (see the subclass). Peak learning rate of AdamW.
        num_train_epochs: 1.0. Passes over the training data; ignored when `max_steps` is set.
        max_steps: None. If set, train exactly this many optimizer steps (PPO: this many rollout
            iterations) regardless of `num_train_epochs`.
        batch_size: method-specific default. Sequences (pairs for reward/DPO, completions for
            RLOO/GRPO, rollouts for PPO) per device per micro-step.
        gradient_accumulation_steps: 1. Micro-steps accumulated into one optimizer step.
        lr_scheduler_type: "linear". One of "linear" (decay to 0), "cosine", "constant".
        warmup_ratio: 0.0. Fraction of the steps over which the learning rate warms up linearly, in [0, 1).
        weight_decay: 0.0. AdamW weight decay.
        max_grad_norm: 1.0. Gradients are clipped to this global norm; 0 disables clipping.
        max_length: 512. Token budget of prompt + response. Reward modelling keeps the last
            max_length tokens of longer conversations, DPO cuts them at the end (TRL's
            "keep_start"); RL methods drop prompts that leave fewer than `max_completion_length`
            tokens for the answer (each with a log line saying how many).
        gradient_checkpointing: False. Recompute activations in the backward pass to save memory
            (about 20% slower); worth it for long sequences on a GPU, not for small CPU runs.
        precision: "auto". "auto" trains in bf16 mixed precision where that is faster (CUDA with
            bf16; CPUs with native bf16 matmuls for models of >= 100 MB) and float32 elsewhere; "fp32" forces float32; "bf16" forces bf16 autocast.
        save_steps: 50. A checkpoint every this many optimizer steps (and at the last step), used
            for resume after a crash and kept on cancel.
        save_total_limit: 2. Number of checkpoints kept on disk (older ones are deleted).
        keep_checkpoints: False. Keep `checkpoints/` after the final artifact is written (they hold
            optimizer state, several times the model's size, so they are removed by default).
        use_lora: False. Train a LoRA adapter (PEFT) instead of all weights. The artifact is then the
            adapter alone plus a `base_model` reference, and the reference policy is the base with
            the adapter switched off.
        lora_r: 16. LoRA rank.
        lora_alpha: 32. LoRA scaling numerator (the update is scaled by alpha / r).
        lora_dropout: 0.05. Dropout on the LoRA branch.
        lora_target_modules: "all-linear". Module names to adapt, or "all-linear" for every linear
            layer except the output head.
        num_processes: 1. Devices (GPUs) to train on. Above 1 the worker starts the run through
            `accelerate launch` (one process per device; `batch_size` is per device, so the global
            batch is batch_size x num_processes x gradient_accumulation_steps). PPO is single-device.
        distributed_strategy: "ddp". With num_processes > 1: "ddp" (a full copy of the model per
            device, gradients all-reduced) or "fsdp" (parameters, gradients and optimizer state
            sharded across devices, for models that do not fit one GPU).
    """

    method: ClassVar[str] = ""

    seed: int = 0
    learning_rate: float = 1e-5
    num_train_epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    lr_scheduler_type: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 512
    gradient_checkpointing: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    save_steps: int = 50
    save_total_limit: int = 2
    keep_checkpoints: bool = False
    use_lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"
    num_processes: int = 1
    distributed_strategy: Literal["ddp", "fsdp"] = "ddp"

    def __post_init__(self) -> None:
        check_field_types(self)
        check(self.seed >= 0, "seed", "must be >= 0")
        check(self.learning_rate > 0 and math.isfinite(self.learning_rate), "learning_rate", "must be a positive number")
        check(self.num_train_epochs > 0, "num_train_epochs", "must be > 0")
        check(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be >= 1 (or null)")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", "must be >= 1")
        check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "must be in [0, 1)")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0 (0 disables clipping)")
        check(self.max_length >= 8, "max_length", "must be >= 8")
        check(self.save_steps >= 1, "save_steps", "must be >= 1")
        check(self.save_total_limit >= 1, "save_total_limit", "must be >= 1 (resume needs a checkpoint)")
        check(self.lora_r >= 1, "lora_r", "must be >= 1")
        check(self.lora_alpha > 0, "lora_alpha", "must be > 0")
        check(1 <= self.num_processes <= 64, "num_processes", "must be between 1 and 64")
        check(
            self.num_processes == 1 or self.method != "ppo",
            "num_processes",
            "PPO trains on one device; use 1 (or RLOO/GRPO for multi-GPU RL)",
        )
        check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "must be in [0, 1)")
        if isinstance(self.lora_target_modules, list):
            check(
                len(self.lora_target_modules) > 0 and all(self.lora_target_modules),
                "lora_target_modules",
                "must be 'all-linear' or a non-empty list of module names",
            )
        else:
            check(bool(self.lora_target_modules), "lora_target_modules", "must not be empty")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, every field included (defaults too), so the hash pins the run."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def config_hash(self) -> str:
        """sha256 of the method and the canonical JSON of `to_dict()`; equal configs hash equal."""
        payload = json.dumps({"method": self.method, "config": self.to_dict()}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> BaseTrainConfig:
        """Build from JSON values; unknown fields raise ValueError naming them and the known ones."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for the "
                f"{cls.method} config; known fields: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def total_batch(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps


def check(condition: bool, field_name: str, message: str) -> None:
    """Raise the ValueError all config validation uses: it names the field so a form can point at it."""
    if not condition:
        raise ValueError(f"{field_name}: {message}")


def check_field_types(config: Any) -> None:
    """Check every field's value against its annotation (JSON configs arrive untyped).

    Supports the annotations configs use: bool, int, float (ints accepted), str, None, Literal,
    unions and list[...]. A bool is never accepted as a number, and a list for a str field is not
    silently joined: a wrong type is a user error worth naming.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        expected = hints[f.name]
        if not _matches(value, expected):
            raise ValueError(f"{f.name}: expected {_describe(expected)}, got {value!r}")
        # Store floats as floats (JSON "1" for a float field) so to_dict/hash are canonical.
        if expected is float and isinstance(value, int):
            setattr(config, f.name, float(value))


def _matches(value: Any, expected: Any) -> bool:
    origin = typing.get_origin(expected)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if expected is str:
        return isinstance(value, str)
    if origin is Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(expected))
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(expected))
    if origin is list:
        (item_type,) = typing.get_args(expected)
        return isinstance(value, list) and all(_matches(item, item_type) for item in value)
    if origin is dict:
        return isinstance(value, dict)
    raise TypeError(f"unsupported config annotation {expected!r}")  # a programming error, not user input


def _describe(expected: Any) -> str:
    origin = typing.get_origin(expected)
    if expected is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in typing.get_args(expected))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arm) for arm in typing.get_args(expected))
    if origin is list:
        return f"a list of {_describe(typing.get_args(expected)[0])}"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(expected, str(expected))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


_ROLES = {"system", "user", "assistant", "tool"}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_preference_records(path: Path | str) -> list[dict[str, Conversation]]:
    """Read a snapshot JSONL in TRL's conversational preference format, validating every line.

    Each line: `{"prompt": [messages], "chosen": [{"role": "assistant", "content": ...}], "rejected": [...]}`.
    Other keys (ids, annotator metadata) are ignored. Any problem raises ValueError naming the file
    and line, so a person can fix the export instead of guessing which of 2,000 lines is wrong.
    """
    path = Path(path)
    records = []
    for line_number, row in _jsonl_rows(path):
        where = f"{path}, line {line_number}"
        for key in ("prompt", "chosen", "rejected"):
            if key not in row:
                raise ValueError(f"{where}: missing key {key!r} (expected prompt, chosen and rejected)")
        prompt = _conversation(row["prompt"], f"{where}: 'prompt'")
        chosen = _conversation(row["chosen"], f"{where}: 'chosen'", assistant_only=True)
        rejected = _conversation(row["rejected"], f"{where}: 'rejected'", assistant_only=True)
        if prompt[-1]["role"] == "assistant":
            raise ValueError(f"{where}: 'prompt' must not end with an assistant message (the answer is in chosen/rejected)")
        records.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    if not records:
        raise ValueError(f"{path}: no records (the file is empty)")
    return records


def load_prompts(path: Path | str) -> list[Conversation]:
    """Prompts for the RL methods, from a preference snapshot or a prompt-only JSONL (`{"prompt": [...]}`).

    A snapshot repeats a prompt once per compared pair; RL needs each prompt once (duplicates
    would silently weight some prompts more), so they are de-duplicated keeping first-seen order.
    """
    path = Path(path)
    seen: set[str] = set()
    prompts: list[Conversation] = []
    for line_number, row in _jsonl_rows(path):
        where = f"{path}, line {line_number}"
        if "prompt" not in row:
            raise ValueError(f"{where}: missing key 'prompt'")
        prompt = _conversation(row["prompt"], f"{where}: 'prompt'")
        if prompt[-1]["role"] == "assistant":
            raise ValueError(f"{where}: 'prompt' must not end with an assistant message")
        key = json.dumps(prompt, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(prompt)
    if not prompts:
        raise ValueError(f"{path}: no prompts (the file is empty)")
    return prompts


def _jsonl_rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist")
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {line_number}: not valid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}")
            yield line_number, row


def _conversation(value: Any, where: str, assistant_only: bool = False) -> Conversation:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where} must be a non-empty list of messages")
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise ValueError(f"{where}[{index}] must be an object with string 'role' and 'content'")
        role = message["role"]
        if role not in _ROLES:
            raise ValueError(f"{where}[{index}] has unknown role {role!r} (expected one of {sorted(_ROLES)})")
        if assistant_only and role != "assistant":
            raise ValueError(f"{where}[{index}] must have role 'assistant', got {role!r}")
        messages.append({"role": role, "content": message["content"]})
    return messages


def split_holdout(records: Sequence[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Seeded split into (train, held-out); the held-out part is never trained on.

    At least one record stays in training; with `fraction == 0` nothing is held out.
    """
    indices = list(range(len(records)))
    random.Random(seed).shuffle(indices)
    count = min(int(round(len(records) * fraction)), len(records) - 1) if fraction > 0 else 0
    held = set(indices[:count])
    train = [record for index, record in enumerate(records) if index not in held]
    holdout = [record for index, record in enumerate(records) if index in held]
    return train, holdout


# --------------------------------------------------------------------------------------------
# Seeds, devices, models
# --------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed every RNG a run touches. transformers' set_seed covers Python, NumPy and torch (all devices)."""
    from transformers import set_seed

    set_seed(seed)


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    bf16: bool  # train with bf16 autocast (weights stay float32 so optimizer updates are not lost)

    @property
    def use_cpu(self) -> bool:
        return self.device.type == "cpu"


# Below this many bytes of weights, bf16 autocast on a CPU costs more in casts than it saves in
# matmuls (and tiny test models are where exact float32 numbers matter most).
CPU_BF16_MIN_WEIGHT_BYTES = 100 * 1024 * 1024


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), where bf16 matmuls run
    2-4x faster than float32; elsewhere torch emulates them and they are slower."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def _weight_bytes(model_dir: Path | None) -> int:
    if model_dir is None or not Path(model_dir).is_dir():
        return 0
    return sum(path.stat().st_size for path in Path(model_dir).glob("*.safetensors"))


def choose_device(config: BaseTrainConfig, model_dir: Path | None = None) -> DeviceChoice:
    """The device from `rlhf.models.pick_device` (CUDA when present, else CPU; `RLHF_DEVICE` overrides).

    Precision "auto" means bf16 autocast (weights stay float32) where it is faster:
    * CUDA devices with bf16;
    * CPUs with native bf16 matmuls (AVX512-BF16 / AMX) when the model in `model_dir` is big
      enough to gain (>= 100 MB of weights, e.g. SmolLM2-135M: about 2x faster per step than
      float32 on such a CPU);
    and float32 elsewhere, including GPUs that only offer fp16 (fp16 training would need loss
    scaling for no gain at this size), CPUs without native bf16 (emulated, slower) and tiny models.
    """
    import torch

    from rlhf.models import pick_device

    device, dtype = pick_device()
    if config.precision == "fp32":
        bf16 = False
    elif config.precision == "bf16":
        bf16 = True
    elif device.type == "cuda":
        bf16 = dtype == torch.bfloat16
    else:
        bf16 = cpu_has_native_bf16() and _weight_bytes(model_dir) >= CPU_BF16_MIN_WEIGHT_BYTES
    return DeviceChoice(device=device, bf16=bf16)


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    """Tokenizer of a model folder, checked for what chat training needs (chat template, EOS, pad)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer in {model_dir} has no chat template; conversational data cannot be formatted")
    if tokenizer.eos_token is None:
        raise ValueError(f"the tokenizer in {model_dir} has no EOS token; responses could never end")
    if tokenizer.pad_token is None:
        # The attention mask, not the pad id, hides padding, so reusing EOS is safe.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def is_adapter_dir(model_dir: Path) -> bool:
    return (Path(model_dir) / "adapter_config.json").is_file()


def adapter_base(model_dir: Path) -> Path:
    """The folder a LoRA artifact was trained on: our manifest's `base_model`, else PEFT's own reference."""
    manifest = read_manifest(model_dir)
    if manifest and manifest.get("base_model"):
        return Path(manifest["base_model"])
    config = json.loads((Path(model_dir) / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"LoRA adapter {model_dir} names no base model")
    return Path(base)


def load_causal_lm(model_dir: Path, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """A full causal LM from a folder of weights or from one of our LoRA artifacts (merged onto its base).

    Adapters chain (round 2 trains an adapter on round 1's adapter), so the base is loaded
    recursively and each adapter is merged in: the result is the policy the artifact stands for.
    Weights load in float32 unless told otherwise: mixed precision keeps master weights in fp32.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder {str(model_dir)!r} does not exist")
    if is_adapter_dir(model_dir):
        from peft import PeftModel

        base = load_causal_lm(adapter_base(model_dir), dtype=dtype)
        return PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype or torch.float32)


def process_rank() -> int:
    """This process's rank in a multi-process (`accelerate launch`) run; 0 when running alone."""
    return int(os.environ.get("RANK", "0") or 0)


def is_main_process() -> bool:
    """Rank 0 writes shared files (merged parent, final artifact); the other ranks wait for them."""
    return process_rank() == 0


def wait_for_file(path: Path, what: str, timeout_s: float = 3600.0) -> None:
    """Block a non-main rank until the main rank has written `path` (it dies with the group otherwise)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank {process_rank()}: gave up waiting {timeout_s:.0f} s for {what} ({path})")
        time.sleep(0.2)


def materialize_parent(base_model_path: Path, work_dir: Path) -> Path:
    """A plain weights folder for the parent policy, merging a LoRA parent once into `work_dir`.

    TRL trainers (and their internally created reference models) load from a path; giving them a
    merged folder makes "the parent policy" unambiguous whatever form the parent artifact has.
    """
    base_model_path = Path(base_model_path)
    if not is_adapter_dir(base_model_path):
        return base_model_path
    target = work_dir / "parent_merged"
    if (target / "config.json").is_file() and (target / ".complete").is_file():
        return target
    if not is_main_process():
        wait_for_file(target / ".complete", "the merged parent policy")
        return target
    if target.exists():
        shutil.rmtree(target)
    model = load_causal_lm(base_model_path)
    model.save_pretrained(target)
    tokenizer = load_tokenizer(base_model_path)
    tokenizer.save_pretrained(target)
    (target / ".complete").write_text("")
    return target


def lora_config(config: BaseTrainConfig, task: Literal["causal_lm", "seq_cls"]) -> LoraConfig | None:
    """The PEFT LoRA config for a run, or None for full fine-tuning.

    For a reward model the freshly initialised scalar head (`score`) must train in full, or the
    model could only rank through a random projection.
    """
    if not config.use_lora:
        return None
    from peft import LoraConfig, TaskType

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type=TaskType.SEQ_CLS if task == "seq_cls" else TaskType.CAUSAL_LM,
        modules_to_save=["score"] if task == "seq_cls" else None,
        bias="none",
    )


def hf_training_arguments(config: BaseTrainConfig, run: RunDir, device: DeviceChoice) -> dict[str, Any]:
    """TrainingArguments shared by the TRL-based methods (passed into each method's TRL config class).

    Several TRL defaults are deliberately overridden: bf16 defaults to True in TRL even on CPU,
    gradient checkpointing defaults to on, and transformers replaces a NaN loss in its logs by the
    running average (`logging_nan_inf_filter`), which would hide divergence from our detector.
    """
    return {
        "output_dir": str(run.checkpoints_dir),
        "seed": config.seed,
        "data_seed": config.seed,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.num_train_epochs,
        "max_steps": config.max_steps if config.max_steps is not None else -1,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "lr_scheduler_type": config.lr_scheduler_type,
        "warmup_steps": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        # transformers 5.23 renamed gradient checkpointing to activation checkpointing; TRL still
        # defaults the old name to True, so set the new one explicitly (it wins) and clear the old.
        "activation_checkpointing": config.gradient_checkpointing,
        "gradient_checkpointing": None,
        "bf16": device.bf16,
        "fp16": False,
        "use_cpu": device.use_cpu,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "logging_nan_inf_filter": False,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "eval_strategy": "no",
    }


# --------------------------------------------------------------------------------------------
# The run folder: identity, checkpoints, final artifact
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced. `artifact_dir` is `out_dir/final`."""

    method: str
    artifact_dir: Path
    final_step: int
    metrics: dict[str, float]
    config_hash: str
    is_adapter: bool
    manifest: dict[str, Any]

    @classmethod
    def from_artifact(cls, artifact_dir: Path) -> TrainResult:
        manifest = json.loads((artifact_dir / MANIFEST_FILE).read_text())
        return cls(
            method=manifest["method"],
            artifact_dir=artifact_dir,
            final_step=int(manifest["final_step"]),
            metrics=dict(manifest["metrics"]),
            config_hash=manifest["config_hash"],
            is_adapter=manifest["artifact_type"] == "lora_adapter",
            manifest=manifest,
        )


@dataclass
class RunDir:
    """One run's folder. `prepare` pins its identity so a restart can only continue the same run."""

    out_dir: Path
    method: str
    config: BaseTrainConfig
    data_path: Path
    data_sha256: str
    base_model: Path
    extra_identity: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoints_dir(self) -> Path:
        return self.out_dir / CHECKPOINTS_DIR

    @property
    def work_dir(self) -> Path:
        return self.out_dir / WORK_DIR

    @property
    def final_dir(self) -> Path:
        return self.out_dir / FINAL_DIR

    @classmethod
    def prepare(
        cls,
        out_dir: Path | str,
        method: str,
        config: BaseTrainConfig,
        data_path: Path | str,
        base_model: Path | str,
        extra_identity: Mapping[str, Any] | None = None,
    ) -> RunDir:
        """Create (or re-open) the run folder; refuse one that belongs to a different run.

        Reusing a folder with another config would resume someone else's checkpoint and register
        a model that matches neither config, so it is an error, not a warning.
        """
        # Absolute paths: the identity and the manifest must not depend on the worker's cwd.
        out_dir = Path(out_dir).absolute()
        data_path = Path(data_path).absolute()
        base_model = Path(base_model).absolute()
        if not data_path.is_file():
            raise FileNotFoundError(f"data file {str(data_path)!r} does not exist")
        if not base_model.is_dir():
            raise FileNotFoundError(f"base model folder {str(base_model)!r} does not exist")
        run = cls(
            out_dir=out_dir,
            method=method,
            config=config,
            data_path=data_path,
            data_sha256=file_sha256(data_path),
            base_model=base_model,
            extra_identity=dict(extra_identity or {}),
        )
        identity = run.identity()
        run_file = out_dir / RUN_FILE
        existing = json.loads(run_file.read_text()) if run_file.is_file() else None
        if existing is not None and existing != identity and run.has_progress():
            differing = sorted(key for key in identity if existing.get(key) != identity[key])
            raise ValueError(
                f"{out_dir} already holds a different run (differs in: {', '.join(differing)}); use a new output folder for a new run"
            )
        if existing != identity:
            # New folder, or one whose earlier attempt failed before its first checkpoint (e.g. on
            # a bad data line): nothing to resume and nothing to lose, so the new identity applies.
            out_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write_text(run_file, json.dumps(identity, indent=2, sort_keys=True) + "\n")
        run.checkpoints_dir.mkdir(exist_ok=True)
        run.work_dir.mkdir(exist_ok=True)
        return run

    def has_progress(self) -> bool:
        """Whether the folder holds work a different run must not reuse: an artifact or a checkpoint."""
        return (self.final_dir / MANIFEST_FILE).is_file() or self.latest_checkpoint() is not None

    def identity(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "config_hash": self.config.config_hash(),
            "data_sha256": self.data_sha256,
            "base_model": str(self.base_model),
            **self.extra_identity,
        }

    def finished(self) -> TrainResult | None:
        """The result of an earlier call that completed (the idempotent fast path), else None."""
        if (self.final_dir / MANIFEST_FILE).is_file():
            self.cleanup()  # a worker may have died between the rename and the cleanup
            return TrainResult.from_artifact(self.final_dir)
        return None

    def latest_checkpoint(self) -> Path | None:
        """Newest complete checkpoint; incomplete ones (a kill during saving) are deleted.

        transformers' own `get_last_checkpoint` takes the highest number even if its files are
        half written, and resuming from it would crash every restart.
        """
        if not self.checkpoints_dir.is_dir():
            return None
        complete: list[tuple[int, Path]] = []
        for child in self.checkpoints_dir.iterdir():
            if not child.is_dir() or not child.name.startswith(CHECKPOINT_PREFIX):
                continue
            suffix = child.name[len(CHECKPOINT_PREFIX) :]
            if not suffix.isdigit():  # e.g. our PPO's temp folders, left by a kill mid-save
                shutil.rmtree(child, ignore_errors=True)
                continue
            if (child / CHECKPOINT_COMPLETE_MARKER).is_file():
                complete.append((int(suffix), child))
            else:
                shutil.rmtree(child, ignore_errors=True)
        return max(complete)[1] if complete else None

    def write_final(
        self,
        *,
        save_weights: Callable[[Path], None],
        tokenizer: PreTrainedTokenizerBase,
        final_step: int,
        metrics: Mapping[str, float],
        artifact_type: Literal["full", "lora_adapter"],
        model_kind: Literal["policy", "reward"],
        extra_manifest: Mapping[str, Any] | None = None,
    ) -> TrainResult:
        """Write weights + tokenizer + manifest into a temp folder, then rename it to `final/`.

        The rename is the commit point: a crash before it leaves no `final/` (the restart redoes
        the save from the last checkpoint), a crash after it is recognised by `finished()`.
        In a multi-process run only rank 0 writes; the other ranks wait for its artifact.
        """
        if not is_main_process():
            wait_for_file(self.final_dir / MANIFEST_FILE, "the final artifact")
            return TrainResult.from_artifact(self.final_dir)
        tmp = self.work_dir / f"final.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_weights(tmp)
        tokenizer.save_pretrained(tmp)
        manifest = {
            "method": self.method,
            "model_kind": model_kind,
            "artifact_type": artifact_type,
            "config": self.config.to_dict(),
            "config_hash": self.config.config_hash(),
            "base_model": str(self.base_model),
            "data_file": str(self.data_path),
            "data_sha256": self.data_sha256,
            "final_step": final_step,
            "metrics": {key: float(value) for key, value in metrics.items()},
            "code_version": rlhf.__version__,
            "library_versions": _library_versions(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **dict(extra_manifest or {}),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _fsync_tree(tmp)
        if self.final_dir.exists():  # only possible if someone created it by hand; never merge into it
            raise FileExistsError(f"{self.final_dir} already exists; refusing to overwrite an artifact")
        os.rename(tmp, self.final_dir)
        _fsync_dir(self.out_dir)
        self.cleanup()
        return TrainResult.from_artifact(self.final_dir)

    def cleanup(self) -> None:
        if not is_main_process():
            return
        shutil.rmtree(self.work_dir, ignore_errors=True)
        if not self.config.keep_checkpoints:
            shutil.rmtree(self.checkpoints_dir, ignore_errors=True)


def _library_versions() -> dict[str, str]:
    import importlib.metadata

    versions = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fsync_tree(root: Path) -> None:
    # Without fsync a power loss after the rename could expose a `final/` with empty files.
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def full_state_dict(trainer: Trainer) -> dict[str, Any] | None:
    """Under FSDP the weights are sharded across processes: gather the full state dict (a collective
    call, so every rank must make it; rank 0 receives the tensors). None when not sharded.

    Untested on real GPUs in this repository's CI (no multi-GPU machine); DDP is tested on CPU.
    """
    if not getattr(trainer, "is_fsdp_enabled", False):
        return None
    return trainer.accelerator.get_state_dict(trainer.model_wrapped)


def save_model_weights(model: Any, target: Path, *, base_model: Path, state_dict: dict[str, Any] | None = None) -> None:
    """Save a trained model: the adapter alone for PEFT models (pointing at `base_model`), else all weights.

    PEFT records the base it was loaded from in `adapter_config.json`; after a merged parent or a
    temp path that would be wrong, so it is rewritten to the base this run was given.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.save_pretrained(target, state_dict=state_dict)
        config_path = target / "adapter_config.json"
        adapter_config = json.loads(config_path.read_text())
        adapter_config["base_model_name_or_path"] = str(base_model)
        config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    else:
        model.save_pretrained(target, state_dict=state_dict)


# --------------------------------------------------------------------------------------------
# Progress, cancellation and divergence for transformers' Trainer
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and info chatter inside a training call (restored afterwards).

    A worker's log should hold our progress lines, not a tqdm bar per saved shard; warnings and
    errors still come through.
    """
    import datasets
    from transformers.utils import logging as hf_logging

    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    dataset_bars_were_enabled = datasets.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            # TRL 1.16 still calls transformers' gradient-checkpointing names that 5.23 renamed;
            # nothing a user can act on.
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*deprecated and will be removed in v6")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_enabled:
            hf_logging.enable_progress_bar()
        if dataset_bars_were_enabled:
            datasets.enable_progress_bars()


def remove_printer_callback(trainer: Trainer) -> None:
    """Drop the callback that prints every log dict to stdout (added when tqdm is disabled); we report instead."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def divergence_message(step: int) -> str:
    return f"loss became NaN at step {step}; lower the learning rate"


class StepTimer:
    """Tokens per second and ETA from wall-clock time since this process (re)started training."""

    def __init__(self) -> None:
        self.start_time = time.monotonic()
        self.start_step: int | None = None
        self.last_time = self.start_time
        self.last_tokens: float | None = None

    def begin(self, step: int) -> None:
        self.start_time = self.last_time = time.monotonic()
        self.start_step = step

    def rates(self, step: int, total: int, tokens_seen: float | None) -> dict[str, float]:
        now = time.monotonic()
        out: dict[str, float] = {}
        if tokens_seen is not None:
            if self.last_tokens is not None and now > self.last_time:
                out["tokens_per_s"] = (tokens_seen - self.last_tokens) / (now - self.last_time)
            self.last_tokens = tokens_seen
        self.last_time = now
        done = step - (self.start_step or 0)
        if done > 0 and total >= step:
            out["eta_s"] = (now - self.start_time) / done * (total - step)
        return out


def make_progress_callback(control: RunControl | None) -> ProgressCallbackProtocol:
    """A transformers TrainerCallback forwarding logs to `control`, handling cancel and NaN (see class)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        """Bridges transformers' Trainer to our RunControl.

        * on_log: forwards step/total, loss, learning rate, tokens/s, ETA and every numeric metric
          the TRL trainer logged; a non-finite loss stops training *without* saving, so the last
          checkpoint stays a healthy one.
        * on_step_end: if the caller asked to stop, ask the Trainer to save a checkpoint and stop;
          the caller then raises RunCancelled (the Trainer itself just returns normally).
        """

        def __init__(self, run_control: RunControl) -> None:
            self.run_control = run_control
            self.cancelled_at: int | None = None
            self.diverged_at: int | None = None
            self.timer = StepTimer()

        def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if 0 < state.max_steps <= state.global_step:
                # Resumed from the final checkpoint (killed before the artifact was written).
                # transformers 5.23 would run one step *past* max_steps here; weights and state
                # are already restored at this point, so stop before any step.
                raise _AlreadyTrained
            self.timer.begin(state.global_step)
            if state.global_step > 0:
                self.run_control.log(f"resumed from checkpoint at step {state.global_step}/{state.max_steps}")
            else:
                self.run_control.log(f"training for {state.max_steps} steps")

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if self.diverged_at is None and self.run_control.should_stop():
                self.cancelled_at = state.global_step
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            logs = logs or {}
            if "loss" not in logs:  # the end-of-training summary (runtime etc.), not a step
                return control
            step = state.global_step
            if not finite(logs["loss"]):
                self.diverged_at = step
                control.should_training_stop = True
                control.should_save = False  # never checkpoint diverged weights
                self.run_control.log(divergence_message(step))
                return control
            metrics = {key: float(value) for key, value in logs.items() if finite(value)}
            metrics.update(self.timer.rates(step, state.max_steps, logs.get("num_tokens")))
            self.run_control.report(step, state.max_steps, metrics)
            return control

    return ProgressCallback(control or NullControl())


def derived_seed(seed: int, step: int, stream: int = 0) -> int:
    """A seed that is a pure function of (run seed, step, stream), for per-step reseeding."""
    return (seed * 1_000_003 + step * 7919 + stream) % (2**31 - 1)


def make_step_seed_callback(seed: int) -> Any:
    """A TrainerCallback that reseeds every RNG at the start of each optimizer step.

    RLOO/GRPO sample answers with the global torch RNG. transformers restores that RNG when it
    resumes, but a fresh epoch iterator draws from it at points that differ between a resumed and
    an uninterrupted run, so the sampled answers (and the final weights) would drift apart.
    Seeding each step from (seed, step) makes the samples of step N the same in both. The callback
    runs after transformers' own RNG restore, so it is what decides.
    """
    from transformers import TrainerCallback, set_seed

    class StepSeedCallback(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            set_seed(derived_seed(seed, state.global_step + 1))
            return control

    return StepSeedCallback()


def epoch_seeded(sampler: Any) -> Any:
    """TRL's RepeatSampler, re-created so each epoch's prompt order is a function of (seed, epoch).

    TRL seeds the sampler's generator once and lets every epoch advance it; a resumed run builds a
    fresh sampler, so from the second epoch on it would visit prompts in a different order than
    the uninterrupted run. transformers calls `set_epoch` on the sampler before each epoch (also
    after a resume), which is where the generator is reseeded here.
    """
    base = type(sampler)

    class EpochSeededRepeatSampler(base):  # type: ignore[misc, valid-type]
        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):  # type: ignore[no-untyped-def]
            if self.shuffle:
                self.generator.manual_seed(derived_seed(self.seed or 0, getattr(self, "epoch", 0), 3))
            return super().__iter__()

    return EpochSeededRepeatSampler(
        data_source=sampler.data_source,
        mini_repeat_count=sampler.mini_repeat_count,
        batch_size=sampler.batch_size,
        repeat_count=sampler.repeat_count,
        shuffle=sampler.shuffle,
        seed=sampler.seed,
    )


class _AlreadyTrained(Exception):
    """Raised by the progress callback when a resumed Trainer has no step left to take."""


class ProgressCallbackProtocol(Protocol):
    cancelled_at: int | None
    diverged_at: int | None


def run_hf_trainer(trainer: Trainer, run: RunDir, callback: ProgressCallbackProtocol, control: RunControl) -> int:
    """Train with resume from the latest complete checkpoint; translate cancel / NaN into exceptions.

    Returns the final global step. The Trainer restores model, optimizer, scheduler, RNG states
    and the position in the data from the checkpoint, so an interrupted run continues exactly
    where it stopped and ends at the same step with the same weights as an uninterrupted one.
    """
    checkpoint = run.latest_checkpoint()
    if checkpoint is not None:
        control.log(f"resuming from {checkpoint.name}")
        _restore_token_count(trainer, checkpoint)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    except _AlreadyTrained:
        control.log(f"{checkpoint.name if checkpoint else 'checkpoint'} is the final step; writing the artifact")
    if callback.diverged_at is not None:
        raise TrainingDiverged(divergence_message(callback.diverged_at))
    if callback.cancelled_at is not None:
        latest = run.latest_checkpoint()
        raise RunCancelled(f"cancelled at step {callback.cancelled_at}; checkpoint kept at {latest if latest else 'none'}")
    return trainer.state.global_step


def _restore_token_count(trainer: Trainer, checkpoint: Path) -> None:
    """Continue TRL's cumulative `num_tokens` metric from the checkpoint.

    TRL keeps the count in a trainer attribute that a resumed Trainer starts again at 0, so a
    resumed run would report fewer tokens (and a wrong tokens/s) than an uninterrupted one.
    """
    if not hasattr(trainer, "_total_train_tokens"):
        return
    state = json.loads((checkpoint / CHECKPOINT_COMPLETE_MARKER).read_text())
    for entry in reversed(state.get("log_history", [])):
        if "num_tokens" in entry:
            trainer._total_train_tokens = int(entry["num_tokens"])
            return


def last_train_metrics(log_history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The metrics of the last logged training step (deterministic: no wall-clock values).

    Taken from the Trainer's `log_history`, which checkpoints carry, so a run resumed right at
    its last step still reports the same final metrics as one that was never interrupted.
    """
    for entry in reversed(log_history):
        if "loss" in entry:
            return {
                key: float(value)
                for key, value in entry.items()
                if finite(value) and key not in {"epoch", "step"} and not _is_wall_clock(key)
            }
    return {}


def _is_wall_clock(key: str) -> bool:
    # e.g. TRL's step_time, transformers' train_runtime / *_per_second: they differ between two
    # otherwise identical runs, so they are progress information, not final metrics.
    return "time" in key or "runtime" in key or key.endswith("_per_second")


def callable_name(function: Any) -> str:
    return getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or type(function).__name__


def reward_identity(method: str, reward_model_path: Path | str | None, reward_fn: RewardFn | None) -> dict[str, Any]:
    """Check that an RL method got exactly one reward, and describe it for run.json and the manifest."""
    if (reward_model_path is None) == (reward_fn is None):
        raise ValueError(f"{method} needs exactly one reward: a reward model (reward_model_path) or a reward_fn")
    if reward_fn is not None:
        if not callable(reward_fn):
            raise TypeError("reward_fn must be callable as f(prompts=..., completions=..., **kwargs) -> list[float]")
        return {"reward_model": None, "reward_fn": callable_name(reward_fn)}
    path = Path(reward_model_path)  # type: ignore[arg-type]
    if not path.is_dir():
        raise FileNotFoundError(f"reward model folder {str(path)!r} does not exist")
    manifest = read_manifest(path)
    if manifest is not None and manifest.get("model_kind") not in (None, "reward"):
        raise ValueError(f"{path} is a {manifest.get('model_kind')} model, not a reward model")
    return {"reward_model": str(path), "reward_fn": None}


def load_reward(reward_model_path: Path | str | None, reward_fn: RewardFn | None, device: DeviceChoice, max_length: int) -> RewardFn:
    """The reward function of an RL run: the callable itself, or a scorer over the reward-model artifact."""
    if reward_fn is not None:
        return reward_fn
    from rlhf.training.reward import RewardModelScorer

    assert reward_model_path is not None
    return RewardModelScorer.load(reward_model_path, device=device.device, max_length=max_length)


def prompt_token_lengths(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Conversation]) -> list[int]:
    """Token counts of the prompts as the policy sees them (chat template + generation prompt)."""
    lengths = []
    for prompt in prompts:
        encoded = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True, return_dict=True)
        lengths.append(len(encoded["input_ids"]))
    return lengths


def filter_prompts_by_length(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Conversation],
    max_prompt_tokens: int,
    control: RunControl,
) -> list[Conversation]:
    """Keep prompts that leave room for the answer; say how many were dropped (silently dropping hides data loss)."""
    lengths = prompt_token_lengths(tokenizer, prompts)
    kept = [prompt for prompt, length in zip(prompts, lengths, strict=True) if length <= max_prompt_tokens]
    dropped = len(prompts) - len(kept)
    if dropped:
        control.log(f"dropped {dropped} of {len(prompts)} prompts longer than {max_prompt_tokens} tokens")
    if not kept:
        raise ValueError(
            f"every prompt is longer than {max_prompt_tokens} tokens (max_length - max_completion_length); "
            "raise max_length or lower max_completion_length"
        )
    return kept
