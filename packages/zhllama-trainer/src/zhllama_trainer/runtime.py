"""Where a run executes: device, precision, and the DDP process group (torchrun's env vars)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from zhllama.errors import ZhllamaError

# Dense bf16 peak FLOP/s of GPUs we know, for MFU (name substring → FLOP/s).
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "4090": 165e12,
    "3090": 71e12,
}


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 dot products (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@dataclass
class Runtime:
    device: torch.device
    dtype: torch.dtype  # autocast dtype; float32 means no autocast
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def device_type(self) -> str:
        return self.device.type

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> Any:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def peak_flops(self, override: float | None) -> float | None:
        if override:
            return override
        if self.device_type != "cuda" or self.dtype == torch.float32:
            return None
        name = torch.cuda.get_device_name(self.device)
        return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ZhllamaError(f"device={name} but torch sees no CUDA GPU")
        return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    if name == "mps" and not torch.backends.mps.is_available():
        raise ZhllamaError("device=mps but MPS is not available")
    if name not in ("cpu", "mps"):
        raise ZhllamaError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on GPUs (fp16 on old ones) and on CPUs with bf16 instructions, else float32.

    On this project's 2-core AVX512-BF16 machine, bf16 autocast trains the 15M shape ~1.45x
    faster than float32 and the tiny shape about as fast (tools/bench_train.py), with the same
    loss curve; without bf16 instructions it would be far slower, so it is off there.
    """
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_bf16():
            return torch.bfloat16
        return torch.float32
    if name == "float16" and device.type == "cpu":
        raise ZhllamaError("dtype=float16 needs a GPU; use bfloat16 or float32 on CPU")
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def start(device: str, dtype: str) -> Runtime:
    """Join torchrun's process group when launched by it (RANK/WORLD_SIZE set), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls for any fp32 leftovers
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(dev, resolve_dtype(dtype, dev), rank, local, world)


def stop(rt: Runtime, finished: bool = True) -> None:
    """Leaves the process group. After a finished run every rank first waits for the others
    (rank 0 may still be writing the last checkpoint): a rank that tore its gloo group down
    while a peer still used the connection was seen to abort ("terminate called without an
    active exception"). After a failure there is no waiting: the others may be inside a
    collective that would never meet this one."""
    if rt.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
