"""Pretokenized shards (FORMATS.md §4): writing, reading, and random training windows.

A shard directory holds flat little-endian token arrays (u16 while the vocab fits, else u32),
each story laid out as BOS, its tokens, EOS, and a `manifest.json` that names the shards per
split and records the tokenizer's hash, vocab size, dtype and counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from zhllama.atomic import atomic_open, read_json
from zhllama.errors import ZhllamaError

FORMAT = "zhllama-shards"
VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "val")
DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}


def dtype_for_vocab(vocab_size: int) -> str:
    """The smallest shard dtype name that holds every id of a vocab."""
    return "uint16" if vocab_size <= 65_535 else "uint32"


def write_shard(path: Path, ids: np.ndarray, dtype: str | np.dtype) -> None:
    """Write `ids` as a flat little-endian array of `dtype`, atomically."""
    dt = np.dtype(DTYPES.get(str(dtype), dtype)).newbyteorder("<")
    ids = np.asarray(ids)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > np.iinfo(dt).max):
        raise ZhllamaError(f"{path}: token ids outside the range of {dt.name}")
    with atomic_open(path, "wb") as f:
        f.write(ids.astype(dt, copy=False).tobytes())


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ZhllamaError(f"{path}: no shard manifest (run zhllama data pretokenize first)")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ZhllamaError(f"{path}: not a zhllama shard manifest")
    return manifest


class ShardSet:
    """A finished shard directory: the manifest checked, shards opened read-only on demand."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.manifest = m = read_manifest(self.dir)
        where = self.dir / MANIFEST
        if m.get("version") != VERSION:
            raise ZhllamaError(f"{where}: version {m.get('version')} is not supported")
        if m.get("dtype") not in DTYPES:
            raise ZhllamaError(f"{where}: unknown dtype {m.get('dtype')!r}")
        if not m.get("complete", True):
            raise ZhllamaError(f"{where}: pretokenizing did not finish; run it again to resume")
        self.dtype: np.dtype = DTYPES[m["dtype"]]
        self.vocab_size: int = int(m["vocab_size"])
        self.bos_id: int = int(m["bos_id"])
        self.eos_id: int | None = m.get("eos_id")
        self.tokenizer_sha256: str = m.get("tokenizer_sha256", "")
        shards = m.get("shards", {})
        for split in SPLITS:
            for name in shards.get(split, []):
                path = self.dir / name
                if not path.is_file():
                    raise ZhllamaError(f"{path}: shard listed in {where} is missing")
                if path.stat().st_size % self.dtype.itemsize:
                    raise ZhllamaError(f"{path}: size is not a whole number of {m['dtype']}")

    def files(self, split: str) -> list[Path]:
        if split not in SPLITS:
            raise ZhllamaError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        return [self.dir / name for name in self.manifest["shards"].get(split, [])]

    def arrays(self, split: str) -> list[np.ndarray]:
        """Each shard of `split` as a read-only memory map (an empty array for an empty file)."""
        out: list[np.ndarray] = []
        for path in self.files(split):
            if path.stat().st_size == 0:
                out.append(np.empty(0, dtype=self.dtype))
            else:
                out.append(np.memmap(path, dtype=self.dtype, mode="r"))
        return out

    def num_tokens(self, split: str) -> int:
        return sum(p.stat().st_size // self.dtype.itemsize for p in self.files(split))

    def __repr__(self) -> str:
        return f"ShardSet({str(self.dir)!r}, vocab_size={self.vocab_size}, dtype={self.dtype.name})"


class WindowSampler:
    """Random windows of seq_len + 1 consecutive tokens (inputs and shifted targets).

    Every window start in every shard is equally likely. The random stream depends only on
    (seed, rank, world_size, worker), so data-parallel ranks see different data, a run is
    reproducible, and `state_dict()`/`load_state_dict()` resume the exact same stream.
    """

    def __init__(
        self,
        shardset: ShardSet,
        split: str,
        seq_len: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        worker: int = 0,
    ) -> None:
        if seq_len < 1 or batch_size < 1:
            raise ZhllamaError(f"seq_len and batch_size must be positive ({seq_len}, {batch_size})")
        if not 0 <= rank < world_size:
            raise ZhllamaError(f"rank {rank} is outside world size {world_size}")
        self.split, self.seq_len, self.batch_size = split, seq_len, batch_size
        self.seed, self.rank, self.world_size, self.worker = seed, rank, world_size, worker
        self.arrays = shardset.arrays(split)
        if not self.arrays:
            raise ZhllamaError(f"{shardset.dir}: no {split} shards")
        for path, arr in zip(shardset.files(split), self.arrays, strict=True):
            if len(arr) < seq_len + 1:
                raise ZhllamaError(
                    f"{path}: {len(arr)} tokens, shorter than one window of {seq_len + 1} "
                    "(use a shorter seq_len or bigger shards)"
                )
        # window starts per shard: 0 .. len - seq_len - 1
        counts = np.array([len(a) - seq_len for a in self.arrays], dtype=np.int64)
        self._ends = np.cumsum(counts)
        self._rng = self._new_rng()
        self.batches = 0

    def _new_rng(self) -> np.random.Generator:
        entropy = [self.seed, self.rank, self.world_size, self.worker]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))

    def next_batch(self) -> np.ndarray:
        """(batch_size, seq_len + 1) int64: column 0..seq_len-1 inputs, 1..seq_len targets."""
        starts = self._rng.integers(0, int(self._ends[-1]), size=self.batch_size)
        shard = np.searchsorted(self._ends, starts, side="right")
        offset = np.where(shard == 0, starts, starts - self._ends[shard - 1])
        out = np.empty((self.batch_size, self.seq_len + 1), dtype=np.int64)
        for row, (s, o) in enumerate(zip(shard.tolist(), offset.tolist(), strict=True)):
            out[row] = self.arrays[s][o : o + self.seq_len + 1]
        self.batches += 1
        return out

    def __iter__(self):
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "worker": self.worker,
            "batches": self.batches,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by `state_dict` (same seed, rank and window shape)."""
        for key in ("split", "seq_len", "seed", "rank", "world_size"):
            if key in state and state[key] != getattr(self, key):
                raise ZhllamaError(
                    f"cannot resume the data stream: saved {key}={state[key]!r}, "
                    f"now {getattr(self, key)!r}"
                )
        self._rng.bit_generator.state = state["rng"]
        self.batches = int(state.get("batches", 0))
