"""Where a run trains and in what precision, and seeding every RNG it touches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rlhf.training.config import BaseTrainConfig

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch


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
