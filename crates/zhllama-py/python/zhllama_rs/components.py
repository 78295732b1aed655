"""The `rust` component of `zhllama.engines` (light: the engine loads in the factory).

Loaded only by the zhllama toolkit's registry, which is why zhllama_rs itself does not
depend on the zhllama package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zhllama.engines import EngineConfig
from zhllama.registry import Component

if TYPE_CHECKING:
    from zhllama_rs.engine import RustEngine


def _make(config: EngineConfig) -> RustEngine:
    from zhllama_rs.engine import RustEngine

    return RustEngine(config)


RUST = Component(
    name="rust",
    description="the zhllama Rust engine (zhllama_rs): llama2.c .bin checkpoints on the CPU",
    factory=_make,
    config=EngineConfig,
)
