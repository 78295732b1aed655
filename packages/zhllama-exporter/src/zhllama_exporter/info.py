"""`zhllama info FILE`: what a checkpoint, an export or a tokenizer file holds, at a glance.

The file is recognised by its content, not its name (the same sniffing `zhllama export` uses),
so a misnamed file is described as what it is. Models are read in full through the exporter's
readers (a 110M model takes about a second), which also validates them; tokenizers through
sentencepiece or the llama2.c tok.bin reader.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from zhllama.atomic import read_json
from zhllama.errors import ZhllamaError

console = Console()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _tok_bin_entries(path: Path) -> int | None:
    """How many entries a llama2.c tok.bin holds when the whole file parses as one, else None.
    (A tok.bin has no magic: an int32 max piece length, then (f32 score, int32 length, bytes).)"""
    data = path.read_bytes()
    if len(data) < 12:
        return None
    (max_len,) = struct.unpack_from("<I", data, 0)
    if not 0 < max_len <= 1024:
        return None
    pos, count = 4, 0
    while pos < len(data):
        if pos + 8 > len(data):
            return None
        _, n = struct.unpack_from("<fI", data, pos)
        pos += 8 + n
        if n > max_len or pos > len(data):
            return None
        count += 1
    return count


def _describe_tokenizer(path: Path) -> dict[str, Any] | None:
    """A tokenizer's facts, or None when the file is no tokenizer."""
    if path.is_dir():
        return None
    with open(path, "rb") as f:
        head = f.read(4)
    if head in (b"GGUF", b"PK\x03\x04"):
        return None
    entries = _tok_bin_entries(path)
    if entries is not None:
        from zhllama_tokenizer.binfile import read_tokenizer_bin

        tok = read_tokenizer_bin(path, entries)
        byte_format = {"hex": "<0xXX>", "latin1": "raw latin-1"}.get(tok.byte_format or "", "none")
        return {
            "format": "llama2c tokenizer (tok.bin)",
            "vocab_size": tok.vocab_size,
            "max_token_length": tok.max_token_length,
            "byte_tokens": byte_format,
        }
    if path.suffix != ".model":
        return None
    from zhllama_tokenizer.spm import load_processor

    sp, _ = load_processor(path)
    return {
        "format": "sentencepiece model",
        "vocab_size": sp.vocab_size(),
        "bos_id": sp.bos_id(),
        "eos_id": sp.eos_id(),
        "byte_fallback": any(sp.is_byte(i) for i in range(sp.vocab_size())),
    }


def _describe_model(path: Path) -> dict[str, Any]:
    from zhllama_exporter.load import load_any, sniff_format

    fmt = sniff_format(path)
    facts: dict[str, Any] = {"format": fmt}
    loaded = load_any(path)
    # the header's fields, in the shape's order (norm_eps is no header field)
    facts.update({k: v for k, v in asdict(loaded.weights.shape).items() if k != "norm_eps"})
    facts.update(
        parameters=sum(t.numel() for t in loaded.weights.tensors.values()),
        dtype=loaded.dtype,
    )
    if loaded.weights.int8 is not None:
        facts["group_size"] = loaded.weights.int8.group_size
    if fmt == "hf":
        config = read_json(path / "config.json")
        facts["dtype"] = config.get("torch_dtype") or config.get("dtype") or "float32"
        facts["tokenizer"] = "inside" if (path / "tokenizer.json").is_file() else "none"
    if loaded.vocab is not None:
        facts["tokenizer"] = f"inside ({len(loaded.vocab.tokens)} pieces)"
    if loaded.training is not None:
        facts["training_step"] = loaded.training["iter_num"]
        facts["best_val_loss"] = loaded.training["best_val_loss"]
        facts["best_step"] = loaded.training["best_iter"]
        tok_path = loaded.tokenizer
        facts["tokenizer"] = str(tok_path) if tok_path else None
        if tok_path:
            # a moved run folder keeps its tokenizer beside the checkpoint
            for candidate in (tok_path, path.parent / tok_path.name):
                if candidate.is_file():
                    facts["tokenizer_sha256"] = _sha256(candidate)
                    break
            else:
                facts["tokenizer_sha256"] = "(tokenizer file not found)"
    return facts


def describe(path: Path) -> dict[str, Any]:
    """Every fact `zhllama info` prints about `path`, as plain data."""
    path = Path(path)
    if not path.exists():
        raise ZhllamaError(f"{path}: no such file or folder")
    facts = _describe_tokenizer(path)
    if facts is None:
        facts = _describe_model(path)
    facts = {"path": str(path), **facts, "size_bytes": _size(path)}
    if path.is_file():
        facts["sha256"] = _sha256(path)
    return facts


def info(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="ckpt.pt, a llama2c .bin (v0/v1/v2), a .gguf, an HF folder, a tokenizer "
            ".model or tok.bin",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Describe a checkpoint, an export or a tokenizer: shape, dtype, vocab, step, hashes, size.

    Example: [bold]zhllama info runs/15M/ckpt.pt[/bold]
    """
    facts = describe(file)
    if as_json:
        print(json.dumps(facts, ensure_ascii=False))
        return
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        console.print(f"{key:<{width}}  {value}", highlight=False, markup=False, soft_wrap=True)
