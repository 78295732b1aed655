"""The exporter components (`zhllama.exporters`): one per format, light to import.

Each factory takes an `ExportConfig` and returns an exporter following
`zhllama.contracts.Exporter`: `export(model, out)` and `read(path)`. The format modules (and
with them torch, numpy, safetensors) are imported only when a factory runs, so `zhllama
plugins` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhllama.registry import Component

DTYPES = ("fp32", "fp16", "bf16")


@dataclass
class ExportConfig:
    """How to export: weight dtype (hf: fp32/fp16/bf16; gguf: those or q8_0; llama2c files are
    fp32), int8 group size (None = the largest of 64, 32, ... dividing dim and hidden),
    tokenizer .model for hf and gguf (gguf also reads a llama2.c tok.bin), and for gguf whether
    a file without a tokenizer is wanted (else a missing tokenizer is an error)."""

    dtype: str = "fp32"
    group_size: int | None = None
    tokenizer: Path | None = None
    weights_only: bool = False


# Every format this package registers, with its description: the one list of them (the entry
# points in pyproject.toml name these components; exporters.EXPORTERS holds the classes).
FORMATS: dict[str, str] = {
    "llama2c": "llama2.c version 0 .bin (fp32, RoPE tables; what run.c and tinyllamas use)",
    "llama2c-v1": "llama2.c version 1 .bin (fp32 with a 256-byte header)",
    "llama2c-int8": "llama2.c version 2 .bin (int8 Q8_0 groups dividing dim and hidden)",
    "hf": "HuggingFace LlamaForCausalLM directory (safetensors fp32/fp16/bf16, configs, tokenizer)",
    "gguf": "GGUF for llama.cpp, ollama and LM Studio (f32/f16/bf16/q8_0, sentencepiece "
    "tokenizer inside)",
}


def _factory(fmt: str) -> Callable[[ExportConfig], Any]:
    def make(config: ExportConfig) -> Any:
        from zhllama_exporter.exporters import make_exporter

        return make_exporter(fmt, config)

    return make


COMPONENTS = {name: Component(name, d, _factory(name), ExportConfig) for name, d in FORMATS.items()}
LLAMA2C = COMPONENTS["llama2c"]
LLAMA2C_V1 = COMPONENTS["llama2c-v1"]
LLAMA2C_INT8 = COMPONENTS["llama2c-int8"]
HF = COMPONENTS["hf"]
GGUF = COMPONENTS["gguf"]
