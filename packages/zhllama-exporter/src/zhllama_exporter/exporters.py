"""The exporter objects behind the components: check the config, then write or read a format.

Writes are atomic: a file goes through `atomic_open`, an HF directory through `atomic_dir`, so
a failed or killed export leaves nothing behind (and an older export in place stays whole).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from zhllama.atomic import atomic_dir, atomic_open
from zhllama.errors import ZhllamaError

from zhllama_exporter import hf, llama2c
from zhllama_exporter.components import DTYPES, ExportConfig
from zhllama_exporter.gguf_format import GgufExporter
from zhllama_exporter.quant import choose_group_size
from zhllama_exporter.weights import Weights, from_model, to_model

FORMATS = ("llama2c", "llama2c-v1", "llama2c-int8", "hf")
_READERS: dict[str, Callable[[Path], Weights]] = {
    "llama2c": llama2c.read_v0,
    "llama2c-v1": llama2c.read_v1,
    "llama2c-int8": llama2c.read_v2,
    "hf": hf.read_hf,
}


def check_config(fmt: str, config: ExportConfig) -> None:
    """Reject settings the format cannot honour, before anything is written."""
    if fmt not in FORMATS:
        raise ZhllamaError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if config.dtype not in DTYPES:
        raise ZhllamaError(f"unknown dtype {config.dtype!r}; dtypes: {', '.join(DTYPES)}")
    if fmt != "hf" and config.dtype != "fp32":
        hint = "use llama2c-int8 for int8" if fmt != "llama2c-int8" else "it is int8 by design"
        raise ZhllamaError(
            f"format {fmt} stores fp32 weights, not {config.dtype} "
            f"({hint}; hf and gguf take fp16/bf16)"
        )
    if fmt != "llama2c-int8" and config.group_size is not None:
        raise ZhllamaError(f"group size only applies to llama2c-int8, not to {fmt}")
    if config.weights_only:
        raise ZhllamaError(f"--weights-only applies to gguf; {fmt} writes no tokenizer anyway")
    if fmt != "hf" and config.tokenizer is not None:
        raise ZhllamaError(
            f"format {fmt} holds no tokenizer; write tok.bin with `zhllama tokenizer export`"
        )
    if config.tokenizer is not None and not Path(config.tokenizer).is_file():
        raise ZhllamaError(f"{config.tokenizer}: no such tokenizer .model file")


@dataclass
class Exporter:
    """One format: `export(model, out)` writes it, `read(path)` loads it into a Transformer."""

    format: str
    config: ExportConfig

    def __post_init__(self) -> None:
        check_config(self.format, self.config)

    def export(self, model: torch.nn.Module, out: Path) -> None:
        self.export_weights(from_model(model), Path(out))

    def export_weights(self, w: Weights, out: Path) -> None:
        out = Path(out)
        if self.format == "hf":
            if out.exists() and not out.is_dir():
                raise ZhllamaError(f"{out}: exists and is not a directory (hf writes a directory)")
            if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
                # atomic_dir replaces the whole directory: never a folder of other things
                raise ZhllamaError(
                    f"{out}: exists and is not a model directory; refusing to replace it"
                )
            with atomic_dir(out) as tmp:
                hf.write_hf(w, tmp, self.config.dtype)
                if self.config.tokenizer is not None:
                    write_hf_tokenizer(
                        Path(self.config.tokenizer), tmp, w.shape.vocab_size, w.shape.max_seq_len
                    )
            return
        if out.is_dir():
            raise ZhllamaError(f"{out}: is a directory; {self.format} writes one .bin file")
        with atomic_open(out, "wb") as f:
            if self.format == "llama2c":
                llama2c.write_v0(w, f)
            elif self.format == "llama2c-v1":
                llama2c.write_v1(w, f)
            else:
                gs = choose_group_size(w.shape.dim, w.shape.hidden_dim, self.config.group_size)
                llama2c.write_v2(w, f, gs)

    def read_weights(self, path: Path) -> Weights:
        path = Path(path)
        if not path.exists():
            raise ZhllamaError(f"{path}: no such file or directory")
        if self.format != "hf" and path.is_dir():
            raise ZhllamaError(f"{path}: is a directory, not a {self.format} .bin file")
        return _READERS[self.format](path)

    def read(self, path: Path) -> torch.nn.Module:
        return to_model(self.read_weights(Path(path)), str(path))


def make_exporter(fmt: str, config: ExportConfig | None = None) -> Exporter | GgufExporter:
    if fmt == "gguf":
        return GgufExporter(config or ExportConfig())
    return Exporter(fmt, config or ExportConfig())


def write_hf_tokenizer(model: Path, out_dir: Path, vocab_size: int, max_len: int) -> None:
    """The tokenizer stage's HF files for a sentencepiece .model, written into `out_dir`."""
    from zhllama.registry import get_registry
    from zhllama_tokenizer.hf import export_hf

    tok = get_registry().create("tokenizers", "sentencepiece", model=Path(model))
    if tok.vocab_size != vocab_size:
        raise ZhllamaError(
            f"{model}: tokenizer has {tok.vocab_size} tokens but the model's vocab is {vocab_size}"
        )
    export_hf(Path(model), out_dir, model_max_length=max_len)
