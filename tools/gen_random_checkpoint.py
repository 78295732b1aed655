#!/usr/bin/env python3
"""Write a llama2.c checkpoint with random weights (and optionally a matching tokenizer).

For speed and format tests: the published Chinese models' shapes, no real weights needed.

    python tools/gen_random_checkpoint.py --shape 15M -o target/bench/15M.bin \
        --tokenizer-out target/bench/tok5000-random.bin
    python tools/gen_random_checkpoint.py --dim 64 --hidden 172 --layers 5 --heads 8 \
        --kv-heads 4 --vocab 512 --seq-len 512 --version 1 -o small.bin
    python tools/gen_random_checkpoint.py --shape 42M --version 2 -o target/bench/42M-q8.bin

Weights are N(0, 0.02) float32, RMSNorm weights 1. The embedding rows of <unk>, BOS and EOS
are scaled down 1000x, so that a greedy run (-t 0) practically never samples them and a
benchmark always runs its full number of steps. Version 2 (int8, FORMATS.md §1.3) quantizes
those same weights in groups (--group-size, default the largest of 64, 32, ... dividing dim and
hidden). Only numpy is needed. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from pathlib import Path

import numpy as np

SHAPES = {
    # dim, hidden, layers, heads, kv_heads, vocab, seq_len
    "15M": (288, 768, 6, 6, 6, 5000, 256),
    "42M": (512, 1376, 8, 8, 8, 5000, 1024),
    "110M": (768, 2048, 12, 12, 12, 5000, 1024),
    "260K": (64, 172, 5, 8, 4, 512, 512),
}
MAGIC = 0x616B3432


def default_group_size(dim: int, hidden: int) -> int:
    gs = 64
    while gs > 1 and (dim % gs or hidden % gs):
        gs //= 2
    return gs


def quantize(w: np.ndarray, gs: int) -> tuple[np.ndarray, np.ndarray]:
    """Q8_0 groups: scale = max|w| / 127, q = round-half-even(w / scale) (as torch.round)."""
    groups = w.reshape(-1, gs)
    scale = (np.abs(groups).max(axis=1) / np.float32(127.0)).astype("<f4")
    safe = np.where(scale > 0, scale, np.float32(1.0))
    q = np.clip(np.rint(groups / safe[:, None]), -127, 127).astype(np.int8)
    return q.reshape(-1), scale


def write_checkpoint(
    path: Path,
    shape: tuple[int, ...],
    version: int,
    shared: bool,
    seed: int,
    group_size: int | None = None,
) -> None:
    d, h, n_layers, n_heads, n_kv, vocab, seq_len = shape
    hs = d // n_heads
    kvd = n_kv * hs
    rng = np.random.default_rng(seed)

    def normal(*dims: int) -> np.ndarray:
        return (rng.standard_normal(dims, dtype=np.float32) * np.float32(0.02)).astype("<f4")

    def ones(*dims: int) -> np.ndarray:
        return np.ones(dims, dtype="<f4")

    emb = normal(vocab, d)
    emb[:3] *= np.float32(1e-3)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        if version == 0:
            f.write(
                struct.pack(
                    "<7i", d, h, n_layers, n_heads, n_kv, vocab if shared else -vocab, seq_len
                )
            )
        else:
            header = struct.pack(
                "<Ii7iB", MAGIC, version, d, h, n_layers, n_heads, n_kv, vocab, seq_len, int(shared)
            )
            if version == 2:
                header += struct.pack("<i", group_size)  # byte 37, unaligned
            f.write(header + b"\0" * (256 - len(header)))

        def tensor(w: np.ndarray) -> None:
            if version == 2:
                q, scale = quantize(w, group_size)
                q.tofile(f)
                scale.tofile(f)
            else:
                w.tofile(f)

        def per_layer(rows: int, cols: int) -> None:
            for _ in range(n_layers):
                tensor(normal(rows, cols))

        if version == 0:
            emb.tofile(f)
            ones(n_layers, d).tofile(f)
            per_layer(d, d)  # wq
            per_layer(kvd, d)  # wk
            per_layer(kvd, d)  # wv
            per_layer(d, d)  # wo
            ones(n_layers, d).tofile(f)
            per_layer(h, d)  # w1
            per_layer(d, h)  # w2
            per_layer(h, d)  # w3
            ones(d).tofile(f)
            np.zeros((2, seq_len, hs // 2), dtype="<f4").tofile(f)  # RoPE tables (unused)
        else:
            ones(n_layers, d).tofile(f)
            ones(n_layers, d).tofile(f)
            ones(d).tofile(f)
            tensor(emb)
            for rows, cols in [(d, d), (kvd, d), (kvd, d), (d, d), (h, d), (d, h), (h, d)]:
                per_layer(rows, cols)
        if not shared:
            tensor(normal(vocab, d))
    os.replace(tmp, path)


def write_tokenizer(path: Path, vocab: int) -> None:
    """A tokenizer.bin with `vocab` entries: control ids, 256 `<0xXX>` byte tokens, a space,
    then single CJK characters (a stand-in for the real tok5000 when it is not around)."""
    pieces: list[bytes] = [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
    pieces += [f"<0x{b:02X}>".encode() for b in range(256)]
    pieces.append(b" ")
    cp = 0x4E00
    while len(pieces) < vocab:
        pieces.append(chr(cp).encode())
        cp += 1
    pieces = pieces[:vocab]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<I", max(len(p) for p in pieces)))
        for i, p in enumerate(pieces):
            f.write(struct.pack("<fI", -float(i), len(p)))
            f.write(p)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), help="a preset shape")
    for name in ["dim", "hidden", "layers", "heads", "kv-heads", "vocab", "seq-len"]:
        ap.add_argument(f"--{name}", type=int)
    ap.add_argument("--version", type=int, choices=[0, 1, 2], default=0)
    ap.add_argument("--group-size", type=int, help="int8 group size (version 2)")
    ap.add_argument("--separate-classifier", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--tokenizer-out", type=Path, help="also write a matching tokenizer.bin")
    a = ap.parse_args(argv)
    explicit = [a.dim, a.hidden, a.layers, a.heads, a.kv_heads, a.vocab, a.seq_len]
    if a.shape:
        shape = list(SHAPES[a.shape])
        shape = [e if e is not None else s for e, s in zip(explicit, shape, strict=True)]
    elif None in explicit:
        ap.error(
            "give --shape or all of --dim --hidden --layers --heads --kv-heads --vocab --seq-len"
        )
    else:
        shape = explicit
    d, h, n_layers, n_heads, n_kv, vocab, seq_len = shape
    if d % n_heads or n_heads % n_kv or (d // n_heads) % 2:
        ap.error(
            "heads must divide dim, kv heads must divide heads, and the head size must be even"
        )
    gs = a.group_size or default_group_size(d, h)
    if a.version == 2 and (gs <= 0 or d % gs or h % gs):
        ap.error(f"--group-size {gs} must divide dim {d} and hidden {h}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint(a.out, tuple(shape), a.version, not a.separate_classifier, a.seed, gs)
    if a.tokenizer_out:
        a.tokenizer_out.parent.mkdir(parents=True, exist_ok=True)
        write_tokenizer(a.tokenizer_out, vocab)
    print(f"wrote {a.out} ({a.out.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
