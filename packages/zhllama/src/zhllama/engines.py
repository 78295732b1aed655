"""What an inference engine component is: the contract behind `zhllama sample`.

An `zhllama.engines` component's factory takes an `EngineConfig` and returns an object with the
`Engine` methods. The Rust engine (`rust`, from zhllama_rs) and the torch engine (`torch`, from
zhllama-trainer) both follow it, so `zhllama sample --engine NAME` works with either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass
class EngineConfig:
    checkpoint: Path
    tokenizer: Path | None = None
    threads: int | None = None
    device: str = "cpu"


@dataclass
class SampleSettings:
    prompt: str = ""
    steps: int = 256
    temperature: float = 1.0
    top_p: float = 0.9
    seed: int | None = None
    stop_at_eos: bool = True


class Engine(Protocol):
    def stream(self, settings: SampleSettings) -> Iterator[str]:
        """Text pieces of the story (prompt first), each made of whole UTF-8 characters."""
        ...
