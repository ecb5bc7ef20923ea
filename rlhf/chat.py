"""Interactive chat for the playground: a per-process cache of loaded versions, and token streaming.

* `ModelCache` keeps the most recently used versions in memory (LRU, `max_bases` base models).
  LoRA artifacts whose base is a plain weights folder share that base: the first adapter wraps
  the base in a `PeftModel`, later adapters are added to it with `load_adapter`, and the base
  itself is served with the adapters disabled. So a project whose versions are all LoRA rounds
  of one base holds one copy of the base weights however many versions staff talk to. Adapters
  trained on adapters (a chain) are merged into a full model and cached as their own entry.
* `stream_chat` decodes one answer token by token with the KV cache, calling `on_text(text,
  tokens)` as it grows, so a worker can publish partial answers. Sampling is plain temperature /
  top-k / top-p with a seeded generator: the same seed and settings give the same answer.

torch, transformers and peft are imported inside functions (the web process imports nothing here).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Message = dict[str, str]


@dataclass
class _Entry:
    model: Any
    tokenizer: Any
    adapters: dict[str, str] = field(default_factory=dict)  # adapter folder -> adapter name in the PeftModel


@dataclass
class LoadedVersion:
    """What `ModelCache.get` returns: use `with loaded.active() as model:` to generate."""

    entry: _Entry
    adapter: str | None
    was_loaded: bool  # False when it came from the cache
    load_seconds: float

    @property
    def tokenizer(self) -> Any:
        return self.entry.tokenizer

    @contextlib.contextmanager
    def active(self) -> Iterator[Any]:
        model = self.entry.model
        if not self.entry.adapters:
            yield model
        elif self.adapter is None:
            with model.disable_adapter():
                yield model
        else:
            model.set_adapter(self.adapter)
            yield model


class ModelCache:
    """LRU of loaded models keyed by base folder; see the module docstring."""

    def __init__(self, max_bases: int = 2) -> None:
        self.max_bases = max(1, max_bases)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times weights were read from disk (tests and benchmarks read it)

    def __contains__(self, model_dir: Path | str) -> bool:
        base, adapter = self._key(Path(model_dir))
        entry = self._entries.get(base)
        return entry is not None and (adapter is None or adapter in entry.adapters)

    @staticmethod
    def _key(model_dir: Path) -> tuple[str, str | None]:
        from rlhf.models import adapter_base, is_adapter_dir

        model_dir = model_dir.absolute()
        if is_adapter_dir(model_dir):
            base = adapter_base(model_dir).absolute()
            if not is_adapter_dir(base):
                return str(base), str(model_dir)
        return str(model_dir), None

    def get(self, model_dir: Path | str) -> LoadedVersion:
        started = time.perf_counter()
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model folder {str(model_dir)!r} does not exist")
        base, adapter_dir = self._key(model_dir)
        with self._lock:
            was_loaded = False
            entry = self._entries.get(base)
            if entry is None:
                entry = self._load_base(Path(base))
                was_loaded = True
                self._entries[base] = entry
                while len(self._entries) > self.max_bases:
                    self._entries.popitem(last=False)
            self._entries.move_to_end(base)
            adapter_name = None
            if adapter_dir is not None:
                adapter_name = entry.adapters.get(adapter_dir)
                if adapter_name is None:
                    adapter_name = self._add_adapter(entry, Path(adapter_dir))
                    was_loaded = True
            return LoadedVersion(entry, adapter_name, was_loaded, time.perf_counter() - started)

    def _load_base(self, folder: Path) -> _Entry:
        from rlhf.models import load_policy

        self.loads += 1
        # A chained adapter comes back merged into a full model (load_policy -> load_causal_lm).
        model, tokenizer = load_policy(folder)
        return _Entry(model, tokenizer)

    def _add_adapter(self, entry: _Entry, adapter_dir: Path) -> str:
        from peft import PeftModel

        self.loads += 1
        name = f"v{len(entry.adapters) + 1}"
        if not entry.adapters:
            entry.model = PeftModel.from_pretrained(entry.model, adapter_dir, adapter_name=name)
        else:
            entry.model.load_adapter(adapter_dir, adapter_name=name)
        entry.model.eval()
        entry.adapters[str(adapter_dir)] = name
        return name


@dataclass
class ChatResult:
    text: str
    tokens: int
    first_token_s: float | None
    seconds: float
    finished: bool  # True when the model ended the answer (EOS), False when max_new_tokens cut it


def stream_chat(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    messages: list[Message],
    *,
    temperature: float = 0.7,
    top_p: float = 0.95,
    top_k: int = 50,
    max_new_tokens: int = 256,
    seed: int = 0,
    on_text: Callable[[str, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ChatResult:
    """Generate one assistant answer to `messages`, reporting the text as it grows."""
    import torch

    from rlhf import sampling

    started = time.perf_counter()
    device = next(model.parameters()).device
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    input_ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=device)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and input_ids.shape[1] + max_new_tokens > limit:
        raise ValueError(
            f"the conversation has {input_ids.shape[1]} tokens; with max_new_tokens {max_new_tokens} it exceeds "
            f"the model's {limit} positions (start a new chat or lower max_new_tokens)"
        )
    eos_ids = _eos_ids(model, tokenizer)
    generator = torch.Generator().manual_seed(int(seed))  # sampling draws on the CPU: same answer on any device
    generated: list[int] = []
    past = None
    first_token_s = None
    finished = False
    text = ""
    step_input = input_ids
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            if should_stop is not None and should_stop():
                break
            out = model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float()
            uniform = torch.rand(1, generator=generator, dtype=torch.float64)
            token = int(sampling.sample(logits.unsqueeze(0), uniform, temperature=temperature, top_k=top_k, top_p=top_p))
            if first_token_s is None:
                first_token_s = time.perf_counter() - started
            if token in eos_ids:
                finished = True
                break
            generated.append(token)
            text = tokenizer.decode(generated, skip_special_tokens=True)
            if on_text is not None:
                # A multi-byte character split across tokens decodes as U+FFFD until it is whole.
                on_text(text.rstrip("\ufffd"), len(generated))
            step_input = torch.tensor([[token]], device=device)
    return ChatResult(text, len(generated), first_token_s, time.perf_counter() - started, finished)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
