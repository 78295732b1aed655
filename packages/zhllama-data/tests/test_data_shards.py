from __future__ import annotations

import json

import numpy as np
import pytest
from zhllama.errors import ZhllamaError
from zhllama_data.shards import (
    MANIFEST,
    ShardSet,
    WindowSampler,
    dtype_for_vocab,
    write_shard,
)


def make_shards(tmp_path, lengths, vocab_size=65_535, complete=True):
    """Shards whose token i of shard k is k * 20_000 + i, so a window shows where it came from."""
    names = []
    dtype = dtype_for_vocab(vocab_size)
    for k, n in enumerate(lengths):
        name = f"train_{k:05d}.bin"
        write_shard(tmp_path / name, k * 20_000 + np.arange(n), dtype)
        names.append(name)
    write_shard(tmp_path / "val_00000.bin", np.arange(300), dtype)
    manifest = {
        "format": "zhllama-shards",
        "version": 1,
        "dtype": dtype,
        "vocab_size": vocab_size,
        "bos_id": 1,
        "eos_id": 2,
        "tokenizer_sha256": "0" * 64,
        "tokenizer": "tok.model",
        "source": "test",
        "shards": {"train": names, "val": ["val_00000.bin"]},
        "counts": {"train": {"stories": 1, "tokens": sum(lengths)}, "val": {}},
        "complete": complete,
    }
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    return ShardSet(tmp_path) if complete else None


def test_write_shard_dtypes(tmp_path):
    assert dtype_for_vocab(5000) == "uint16" and dtype_for_vocab(65_535) == "uint16"
    assert dtype_for_vocab(65_536) == "uint32" and dtype_for_vocab(100_000) == "uint32"
    write_shard(tmp_path / "a.bin", np.array([1, 2, 65_535]), "uint16")
    assert (tmp_path / "a.bin").read_bytes() == b"\x01\x00\x02\x00\xff\xff"
    write_shard(tmp_path / "b.bin", np.array([1, 70_000]), "uint32")
    assert np.fromfile(tmp_path / "b.bin", dtype="<u4").tolist() == [1, 70_000]
    with pytest.raises(ZhllamaError, match="c.bin"):
        write_shard(tmp_path / "c.bin", np.array([70_000]), "uint16")
    assert not (tmp_path / "c.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_shardset(tmp_path):
    ss = make_shards(tmp_path, [500, 700])
    assert (ss.vocab_size, ss.dtype, ss.bos_id, ss.eos_id) == (65_535, np.dtype("<u2"), 1, 2)
    assert ss.num_tokens("train") == 1200 and ss.num_tokens("val") == 300
    arrays = ss.arrays("train")
    assert [len(a) for a in arrays] == [500, 700]
    assert arrays[1][:3].tolist() == [20_000, 20_001, 20_002]
    with pytest.raises(ZhllamaError, match="split"):
        ss.files("test")


def test_shardset_errors(tmp_path):
    with pytest.raises(ZhllamaError, match="manifest"):
        ShardSet(tmp_path)
    make_shards(tmp_path, [500], complete=False)
    with pytest.raises(ZhllamaError, match="did not finish"):
        ShardSet(tmp_path)
    make_shards(tmp_path, [500])
    (tmp_path / "train_00000.bin").unlink()
    with pytest.raises(ZhllamaError, match="train_00000.bin"):
        ShardSet(tmp_path)


def test_windows_are_slices(tmp_path):
    lengths = [400, 900, 100]
    ss = make_shards(tmp_path, lengths)
    sampler = WindowSampler(ss, "train", seq_len=32, batch_size=64, seed=1)
    seen = set()
    for _ in range(10):
        batch = sampler.next_batch()
        assert batch.shape == (64, 33) and batch.dtype == np.int64
        for row in batch:
            shard, offset = divmod(int(row[0]), 20_000)
            assert offset + 33 <= lengths[shard]  # the window stays inside its shard
            assert np.array_equal(row, np.arange(row[0], row[0] + 33))
            seen.add(shard)
    assert seen == {0, 1, 2}


def test_deterministic_per_seed_and_rank(tmp_path):
    ss = make_shards(tmp_path, [2000, 3000])

    def batches(**kw):
        s = WindowSampler(ss, "train", seq_len=16, batch_size=8, **kw)
        return np.stack([s.next_batch() for _ in range(4)])

    a = batches(seed=7)
    assert np.array_equal(a, batches(seed=7))
    assert not np.array_equal(a, batches(seed=8))
    r0 = batches(seed=7, rank=0, world_size=2)
    r1 = batches(seed=7, rank=1, world_size=2)
    assert np.array_equal(r0, batches(seed=7, rank=0, world_size=2))
    assert not np.array_equal(r0, r1)
    with pytest.raises(ZhllamaError, match="rank"):
        WindowSampler(ss, "train", 16, 8, seed=7, rank=2, world_size=2)


def test_state_round_trip(tmp_path):
    ss = make_shards(tmp_path, [2000, 3000])
    s = WindowSampler(ss, "train", seq_len=16, batch_size=8, seed=3, rank=1, world_size=4)
    for _ in range(3):
        s.next_batch()
    state = json.loads(json.dumps(s.state_dict()))  # survives JSON (and torch.save)
    expected = [s.next_batch() for _ in range(3)]
    resumed = WindowSampler(ss, "train", seq_len=16, batch_size=8, seed=3, rank=1, world_size=4)
    resumed.load_state_dict(state)
    assert resumed.batches == 3
    for want in expected:
        assert np.array_equal(resumed.next_batch(), want)
    other = WindowSampler(ss, "train", seq_len=32, batch_size=8, seed=3, rank=1, world_size=4)
    with pytest.raises(ZhllamaError, match="seq_len"):
        other.load_state_dict(state)


def test_short_shard_is_an_error(tmp_path):
    ss = make_shards(tmp_path, [500, 20])
    with pytest.raises(ZhllamaError, match="train_00001.bin"):
        WindowSampler(ss, "train", seq_len=32, batch_size=4, seed=0)
    WindowSampler(ss, "train", seq_len=19, batch_size=4, seed=0)  # 20 tokens = one window
