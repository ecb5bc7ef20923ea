"""Several processes of one run (accelerate / torchrun): who writes, and waiting for what the main process writes."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rlhf.models import is_adapter_dir, load_causal_lm, load_tokenizer

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass


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
