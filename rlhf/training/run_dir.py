"""One run's folder: its identity, its checkpoints, and the artifact that appears only when complete.

The training package is split by concern: `config` (the shared config base), `data` (JSONL
inputs), `devices`, `distributed`, `hf_trainer` (running a TRL Trainer), `callbacks`,
`rl_reward` (rewards of online RL) and this module; models are loaded by `rlhf.models` and
scored by `rlhf.scoring`. Each method module (`reward`, `dpo`, `ppo`, `rloo`, `grpo`, `sft`)
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

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import rlhf
from rlhf.models import MANIFEST_FILE, file_sha256
from rlhf.training.config import BaseTrainConfig
from rlhf.training.distributed import is_main_process, wait_for_file

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import PreTrainedTokenizerBase, Trainer


CHECKPOINTS_DIR = "checkpoints"


WORK_DIR = "_work"


FINAL_DIR = "final"


RUN_FILE = "run.json"


CHECKPOINT_PREFIX = "checkpoint-"


CHECKPOINT_COMPLETE_MARKER = "trainer_state.json"  # written last by transformers' Trainer and by our PPO


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
