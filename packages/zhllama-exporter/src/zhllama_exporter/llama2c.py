"""llama2.c checkpoints: version 0 (legacy), 1 (fp32 + header) and 2 (int8), FORMATS.md §1.

Writers take `Weights` and a binary file object; readers take a path, check the header against
the file size before trusting any offset, and return `Weights` (int8 dequantized to fp32).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from zhllama.errors import ZhllamaError
from zhllama_trainer.architecture import LAYER_MATRICES, ModelShape
from zhllama_trainer.model import rope_tables

from zhllama_exporter.quant import dequantize, quantize
from zhllama_exporter.weights import Int8, Weights

MAGIC = 0x616B3432  # "ak42" read as a little-endian u32
HEADER_BYTES = 256
# The export format that writes each version (the names of components.FORMATS).
FORMAT_OF_VERSION = {0: "llama2c", 1: "llama2c-v1", 2: "llama2c-int8"}


# ---------------------------------------------------------------------------------- writing


def _f32(f: BinaryIO, t: torch.Tensor) -> None:
    f.write(t.detach().to(torch.float32).contiguous().numpy().astype("<f4", copy=False).tobytes())


def _params(shape: ModelShape, vocab: int) -> bytes:
    s = shape
    return struct.pack(
        "<7i", s.dim, s.hidden_dim, s.n_layers, s.n_heads, s.n_kv_heads, vocab, s.max_seq_len
    )


ROPE = "rope"  # version 0's two RoPE tables (T, hs/2) in `body_order`: computed, never read


def body_order(s: ModelShape, version: int) -> list[str]:
    """The tensors of a body in file order, by state-dict name (and `ROPE`): version 0 is
    llama2.c's legacy order, versions 1 and 2 put the norms first (version 2 stores every
    matrix as int8). The one table the writers, the readers and the size checks walk."""

    def layers(*names: str) -> list[str]:
        return [f"layers.{i}.{name}.weight" for name in names for i in range(s.n_layers)]

    attention, ffn = LAYER_MATRICES[:4], LAYER_MATRICES[4:]
    if version == 0:
        order = ["tok_embeddings.weight", *layers("attention_norm"), *layers(*attention)]
        order += [*layers("ffn_norm"), *layers(*ffn), "norm.weight", ROPE]
    else:
        order = [*layers("attention_norm", "ffn_norm"), "norm.weight", "tok_embeddings.weight"]
        order += layers(*LAYER_MATRICES)
    if not s.shared_classifier:
        order.append("output.weight")
    return order


def is_matrix(name: str) -> bool:
    """Whether `body_order`'s `name` is a matrix (int8 in version 2; norms stay f32)."""
    return name != ROPE and not name.endswith("norm.weight")


def _body_bytes(s: ModelShape, version: int, group_size: int = 0) -> int:
    shapes = s.tensor_shapes()
    total = 0
    for name in body_order(s, version):
        n = s.max_seq_len * s.head_dim if name == ROPE else int(np.prod(shapes[name]))
        total += n + 4 * (n // group_size) if version == 2 and is_matrix(name) else 4 * n
    return total


def _write_body(w: Weights, f: BinaryIO, version: int, group_size: int = 0) -> None:
    s = w.shape
    for name in body_order(s, version):
        if name == ROPE:
            cos, sin = rope_tables(s.head_dim, s.max_seq_len)
            _f32(f, cos)
            _f32(f, sin)
        elif version == 2 and is_matrix(name):
            q, scale = quantize(w.tensors[name], group_size)
            f.write(q.contiguous().numpy().tobytes())
            _f32(f, scale)
        else:
            _f32(f, w.tensors[name])


def _header(w: Weights, version: int, group_size: int | None = None) -> bytes:
    head = struct.pack("<Ii", MAGIC, version) + _params(w.shape, w.shape.vocab_size)
    head += struct.pack("<B", int(w.shape.shared_classifier))
    if group_size is not None:
        head += struct.pack("<i", group_size)  # at byte 37, unaligned, as the format has it
    return head + b"\0" * (HEADER_BYTES - len(head))


def write_v0(w: Weights, f: BinaryIO) -> None:
    s = w.shape
    f.write(_params(s, s.vocab_size if s.shared_classifier else -s.vocab_size))
    _write_body(w, f, 0)


def write_v1(w: Weights, f: BinaryIO) -> None:
    f.write(_header(w, 1))
    _write_body(w, f, 1)


def write_v2(w: Weights, f: BinaryIO, group_size: int) -> None:
    f.write(_header(w, 2, group_size))
    _write_body(w, f, 2, group_size)


# ---------------------------------------------------------------------------------- reading


class _Cursor:
    """Reads consecutive little-endian arrays out of a memory-mapped file."""

    def __init__(self, path: Path, offset: int) -> None:
        self.data = np.memmap(path, dtype=np.uint8, mode="r")
        self.pos = offset

    def take(self, dtype: str, shape: tuple[int, ...]) -> torch.Tensor:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        raw = np.frombuffer(self.data[self.pos : self.pos + n], dtype=dtype).reshape(shape)
        self.pos += n
        return torch.from_numpy(raw.astype(dtype.replace("<", "="), copy=True))

    def f32(self, *shape: int) -> torch.Tensor:
        return self.take("<f4", shape)


def sniff_version(path: Path) -> int:
    """0, 1 or 2 by the file's first bytes (version 0 has no magic)."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:
        raise ZhllamaError(f"{path}: too short to be a llama2.c checkpoint ({len(head)} bytes)")
    magic, version = struct.unpack("<Ii", head)
    if magic != MAGIC:
        return 0
    if version not in (1, 2):
        raise ZhllamaError(f"{path}: llama2.c header has unknown version {version}")
    return version


def _check_size(path: Path, s: ModelShape, expected: int, what: str) -> None:
    actual = path.stat().st_size
    if actual != expected:
        raise ZhllamaError(
            f"{path}: not a valid llama2.c {what} checkpoint: its header "
            f"(dim {s.dim}, hidden {s.hidden_dim}, layers {s.n_layers}, heads {s.n_heads}, "
            f"kv heads {s.n_kv_heads}, vocab {s.vocab_size}, seq {s.max_seq_len}) needs "
            f"{expected} bytes, the file has {actual}"
        )


def _expect_version(path: Path, version: int) -> None:
    found = sniff_version(path)
    if found != version:
        fmt = FORMAT_OF_VERSION[found]
        raise ZhllamaError(
            f"{path}: is a llama2.c version {found} file, not version {version} (format {fmt})"
        )


def read_v0(path: Path) -> Weights:
    path = Path(path)
    _expect_version(path, 0)
    with open(path, "rb") as f:
        head = f.read(28)
    if len(head) < 28:  # found by fuzzing: a short file was a struct.error traceback
        raise ZhllamaError(f"{path}: too short to be a llama2.c checkpoint ({len(head)} bytes)")
    d, h, L, H, Hk, V, T = struct.unpack("<7i", head)
    s = ModelShape(d, h, L, H, Hk, abs(V), T, shared_classifier=V > 0)
    s.check(str(path))
    _check_size(path, s, 28 + _body_bytes(s, 0), "v0")
    c = _Cursor(path, 28)
    return Weights(s, _read_body(s, c, 0, c.f32))


def _read_header(path: Path, version: int) -> tuple[ModelShape, int]:
    _expect_version(path, version)
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
    if len(head) < HEADER_BYTES:
        raise ZhllamaError(f"{path}: header is {len(head)} bytes, expected {HEADER_BYTES}")
    d, h, L, H, Hk, V, T = struct.unpack_from("<7i", head, 8)
    shared = head[36]
    if shared not in (0, 1):
        raise ZhllamaError(f"{path}: shared-classifier flag is {shared}, expected 0 or 1")
    group_size = struct.unpack_from("<i", head, 37)[0] if version == 2 else 0
    s = ModelShape(d, h, L, H, Hk, V, T, shared_classifier=bool(shared))
    s.check(str(path))
    return s, group_size


def _read_body(
    s: ModelShape, c: _Cursor, version: int, matrix: Callable[[int, int], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A body in `body_order`: norms as f32, matrices read by `matrix(rows, cols)`."""
    shapes = s.tensor_shapes()
    t: dict[str, torch.Tensor] = {}
    for name in body_order(s, version):
        if name == ROPE:
            c.pos += 4 * s.max_seq_len * s.head_dim  # recomputed, not read
        elif is_matrix(name):
            t[name] = matrix(*shapes[name])
        else:
            t[name] = c.f32(*shapes[name])
    return t


def read_v1(path: Path) -> Weights:
    path = Path(path)
    s, _ = _read_header(path, 1)
    _check_size(path, s, HEADER_BYTES + _body_bytes(s, 1), "v1")
    c = _Cursor(path, HEADER_BYTES)
    return Weights(s, _read_body(s, c, 1, c.f32))


def read_v2(path: Path) -> Weights:
    """Read an int8 file, dequantizing every matrix to fp32."""
    path = Path(path)
    s, gs = _read_header(path, 2)
    if gs <= 0 or s.dim % gs or s.hidden_dim % gs:
        raise ZhllamaError(
            f"{path}: group size {gs} does not divide dim {s.dim} and hidden {s.hidden_dim}"
        )
    _check_size(path, s, HEADER_BYTES + _body_bytes(s, 2, gs), "v2 (int8)")
    c = _Cursor(path, HEADER_BYTES)
    groups: list[tuple[torch.Tensor, torch.Tensor]] = []

    def matrix(rows: int, cols: int) -> torch.Tensor:
        q = c.take("i1", (rows, cols))
        scale = c.f32(rows * cols // gs)
        groups.append((q, scale))
        return dequantize(q, scale, gs)

    t = _read_body(s, c, 2, matrix)
    matrices = [n for n in t if is_matrix(n)]  # in the order read
    return Weights(s, t, Int8(gs, dict(zip(matrices, groups, strict=True))))


def read_group_size(path: Path) -> int:
    return _read_header(Path(path), 2)[1]
