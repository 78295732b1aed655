"""Registry entries of zhllama-trainer: the size presets (each a zhllama.contracts.Preset of
presets.py's values) and the `torch` engine.

Light module: torch is imported only inside the engine factory.
"""

from __future__ import annotations

from typing import Any

from zhllama.contracts import EngineConfig, Preset, PresetSettings
from zhllama.registry import Component

from zhllama_trainer.presets import PRESETS


def _preset(name: str) -> Component:
    p = PRESETS[name]
    kv = p.get("n_kv_heads") or p["n_heads"]
    desc = (
        f"dim {p['dim']}, {p['n_layers']} layers, {p['n_heads']} heads ({kv} kv), "
        f"seq {p['max_seq_len']}, batch {p['batch_size']}×{p['gradient_accumulation_steps']}, "
        f"{p['max_iters']:,} iters"
    )

    def make() -> Preset:
        return PresetSettings(name, dict(p))

    return Component(name, desc, make)


TINY = _preset("tiny")
P15M = _preset("15M")
P42M = _preset("42M")
P110M = _preset("110M")


def _make_torch_engine(config: EngineConfig) -> Any:
    from zhllama_trainer.engine import TorchEngine

    return TorchEngine(config)


TORCH = Component(
    "torch",
    "the torch model on CPU/GPU from a ckpt.pt (or llama2c .bin), llama2.c's sampler",
    _make_torch_engine,
    EngineConfig,
)
