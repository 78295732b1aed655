"""Read any checkpoint zhllama knows: a trainer ckpt.pt or any exported format, by its content."""

from __future__ import annotations

import zipfile
from pathlib import Path

from zhllama.errors import ZhllamaError

from zhllama_exporter import llama2c
from zhllama_exporter.exporters import make_exporter
from zhllama_exporter.gguf_format import read_gguf
from zhllama_exporter.weights import Loaded, from_model

__all__ = ["Loaded", "load_any", "sniff_format"]


def sniff_format(path: Path) -> str:
    """ "ckpt", "hf", "gguf", "llama2c", "llama2c-v1" or "llama2c-int8" by what the path holds."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        raise ZhllamaError(f"{path}: a directory without config.json is no model checkpoint")
    if not path.is_file():
        raise ZhllamaError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        return "gguf"
    zip_start = magic == b"PK\x03\x04"
    # torch.save writes a zip archive; a truncated one has lost its directory at the end but
    # still starts like a zip, and must be reported as a damaged ckpt, not read as llama2c
    if zip_start or zipfile.is_zipfile(path):
        return "ckpt"
    return llama2c.FORMAT_OF_VERSION[llama2c.sniff_version(path)]


def load_any(path: Path) -> Loaded:
    path = Path(path)
    fmt = sniff_format(path)
    if fmt == "gguf":
        g = read_gguf(path)
        return Loaded(g.weights, fmt, path, vocab=g.vocab, dtype=g.dtype)
    if fmt != "ckpt":
        dtype = "int8" if fmt == "llama2c-int8" else "fp32"
        return Loaded(make_exporter(fmt).read_weights(path), fmt, path, dtype=dtype)
    from zhllama_trainer.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    tok = ckpt.get("tokenizer")
    training = {k: ckpt.get(k) for k in ("iter_num", "best_val_loss", "best_iter")}
    return Loaded(from_model(model), fmt, path, Path(tok) if tok else None, training=training)
