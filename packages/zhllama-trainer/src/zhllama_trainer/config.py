"""TrainConfig: every setting of a training run, built from a preset plus overrides.

Light module (no torch): the CLI imports it. Presets come from the registry's `zhllama.presets`
components (this package's are in presets.py), so a plug-in's preset trains like a built-in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhllama.config import build_config
from zhllama.errors import ZhllamaError

from zhllama_trainer.architecture import ATTENTION_KERNELS, check_heads

DEFAULT_DATA_DIR = Path("data/shards")


@dataclass
class TrainConfig:
    size: str = "15M"  # the preset this run started from (informational once built)
    # I/O
    data_dir: Path = DEFAULT_DATA_DIR  # pretokenized shards (`zhllama data pretokenize`)
    out_dir: Path | None = None  # None: runs/<size>
    tokenizer: Path | None = None  # tokenizer .model; None: the one named in the data manifest
    # model
    dim: int = 288
    n_layers: int = 6
    n_heads: int = 6
    n_kv_heads: int | None = None
    # None: the data's (its manifest records the vocabulary); a value is checked against it
    vocab_size: int | None = None
    hidden_dim: int | None = None
    multiple_of: int = 32
    max_seq_len: int = 256
    dropout: float = 0.0
    # batches: tokens per optimizer step = batch_size · gradient_accumulation_steps · max_seq_len
    batch_size: int = 128  # per micro-step and rank
    gradient_accumulation_steps: int = 4  # global: divided across DDP ranks
    max_iters: int = 100_000
    # AdamW and the schedule: linear warmup, cosine decay to min_lr at lr_decay_iters
    learning_rate: float = 5e-4
    min_lr: float = 0.0
    warmup_iters: int = 1000
    lr_decay_iters: int | None = None  # None: max_iters
    decay_lr: bool = True
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 disables clipping
    # evaluation, logging, checkpoints
    eval_interval: int = 2000
    eval_iters: int = 100
    log_interval: int = 10
    export_bin: bool = True  # write model.bin + tokenizer.bin when val loss improves
    plot: bool = True  # loss.png at each evaluation
    progress: bool = True  # the rich progress bar (rank 0)
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "zhllama"
    # system
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    compile: bool = False
    # auto: zhllama's CPU kernel for heads of up to 8 values (the tiny preset), else torch's
    # scaled_dot_product_attention; sdpa: always torch's (zhllama_trainer/cpu_attention.py)
    attention: str = "auto"
    threads: int | None = None  # CPU threads for torch; None: torch's default
    peak_flops: float | None = None  # for MFU; None: looked up for known GPUs
    seed: int = 1337

    @property
    def run_dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else Path("runs") / self.size

    @property
    def decay_iters(self) -> int:
        return self.lr_decay_iters if self.lr_decay_iters is not None else self.max_iters

    def validate(self) -> None:
        """Raise ZhllamaError for settings that cannot work, before any data is read."""
        positive = ("batch_size", "gradient_accumulation_steps", "max_seq_len", "eval_iters")
        for name in positive + ("eval_interval", "log_interval"):
            if getattr(self, name) <= 0:
                raise ZhllamaError(f"{name} must be positive, not {getattr(self, name)}")
        if self.max_iters < 0 or self.warmup_iters < 0:
            raise ZhllamaError("max_iters and warmup_iters must not be negative")
        if self.learning_rate <= 0 or self.min_lr < 0 or self.min_lr > self.learning_rate:
            raise ZhllamaError(
                f"need 0 <= min_lr <= learning_rate and learning_rate > 0 "
                f"(got learning_rate={self.learning_rate}, min_lr={self.min_lr})"
            )
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ZhllamaError(
                f"dtype must be auto, float32, bfloat16 or float16, not {self.dtype}"
            )
        if self.attention not in ATTENTION_KERNELS:
            raise ZhllamaError(f"attention must be auto or sdpa, not {self.attention}")
        # the rest of the shape is checked when the model is built, with the data's vocabulary
        kv = self.n_heads if self.n_kv_heads is None else self.n_kv_heads
        check_heads(self.dim, self.n_heads, kv, "settings")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings), for checkpoints and metrics."""
        out = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


def preset_settings(size: str) -> dict[str, Any]:
    """The TrainConfig values of preset `size`, from the registry (a plug-in's preset too)."""
    from zhllama.contracts import Preset
    from zhllama.registry import get_registry

    registry = get_registry()
    if size not in registry.components("presets"):
        known = ", ".join(registry.components("presets")) or "none installed"
        raise ZhllamaError(f"unknown size {size!r}; presets: {known}")
    preset = registry.create("presets", size)
    if not isinstance(preset, Preset):
        raise ZhllamaError(
            f"preset {size!r} gave a {type(preset).__name__}, not a Preset "
            "(an object with name and settings; see zhllama.contracts)"
        )
    return dict(preset.settings)


def make_config(size: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The preset `size` with `overrides` (strings are converted); unknown keys are errors."""
    values: dict[str, Any] = {**preset_settings(size), "size": size}
    config = build_config(TrainConfig, values)
    config = build_config(TrainConfig, overrides or {}, base=config)
    config.validate()
    return config


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Rebuild a TrainConfig saved in a checkpoint (keys it does not know are dropped)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return build_config(TrainConfig, {k: v for k, v in values.items() if k in known})
