"""Core errors become FileNotFoundError / ValueError / OSError, never a PanicException."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import zhllama_rs


def test_missing_files(tiny, tmp_path) -> None:
    missing = tmp_path / "nope.bin"
    with pytest.raises(FileNotFoundError) as e:
        zhllama_rs.Model(missing, tiny.tokenizer)
    assert e.value.filename == str(missing) and e.value.errno == 2
    with pytest.raises(FileNotFoundError) as e:
        zhllama_rs.Model(tiny.model, missing)
    assert e.value.filename == str(missing)
    with pytest.raises(FileNotFoundError):
        zhllama_rs.Tokenizer(missing, 512)


def test_operating_system_errors(tiny) -> None:
    # a path through a regular file: ENOTDIR, an OSError that is neither of the others
    with pytest.raises(OSError) as e:
        zhllama_rs.Model(tiny.model / "x.bin")
    assert not isinstance(e.value, FileNotFoundError)
    assert e.value.filename == str(tiny.model / "x.bin")


@pytest.mark.parametrize("size", [0, 3, 28, 1000, 4096])
def test_malformed_checkpoints(tiny, tmp_path, size) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(tiny.model.read_bytes()[:size])
    with pytest.raises(ValueError, match="bad.bin"):
        zhllama_rs.Model(bad)


def test_random_headers_never_panic(tmp_path) -> None:
    rng = np.random.default_rng(0)
    bad = tmp_path / "random.bin"
    for i in range(200):
        header = rng.integers(-(2**31), 2**31, size=7, dtype=np.int64)
        if i % 2:  # small plausible shapes, wrong sizes
            header = rng.integers(-4, 70, size=7)
        body = rng.bytes(int(rng.integers(0, 4000)))
        bad.write_bytes(struct.pack("<7i", *(int(v) for v in header)) + body)
        with pytest.raises(ValueError):
            zhllama_rs.Model(bad)


def test_malformed_tokenizers(tiny, tmp_path) -> None:
    with pytest.raises(ValueError, match="512"):
        zhllama_rs.Tokenizer(tiny.tokenizer, 600)  # vocab size does not match
    with pytest.raises(ValueError):
        zhllama_rs.Model(tiny.model, tiny.model)  # a checkpoint is not a tokenizer
    cut = tmp_path / "cut.bin"
    cut.write_bytes(tiny.tokenizer.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cut.bin"):
        zhllama_rs.Model(tiny.model, cut)
    with pytest.raises(ValueError):
        zhllama_rs.Tokenizer(tmp_path, 512)  # a directory
    with pytest.raises(ValueError):
        zhllama_rs.Tokenizer(tiny.tokenizer, 0)


def test_bad_arguments(tiny) -> None:
    with pytest.raises(ValueError):
        zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=-1)
    with pytest.raises(ValueError):
        zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=100_000)
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    for token, pos in [(512, 0), (-1, 0), (2**40, 0), (1, 256), (1, -1)]:
        with pytest.raises(ValueError):
            m.forward(token, pos)
    for kw in [dict(temperature=math.nan), dict(top_p=math.nan)]:
        with pytest.raises(ValueError):
            m.generate("从", **kw)
        with pytest.raises(ValueError):
            m.stream("从", **kw)
    tok = m.tokenizer
    assert tok is not None
    for ids in [[1, 512], [-1], [2**33]]:
        with pytest.raises(ValueError, match="outside the vocab"):
            tok.decode(ids)
    with pytest.raises(TypeError):
        tok.decode(["a"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        m.generate(steps="many")  # type: ignore[arg-type]


def test_generation_needs_a_tokenizer(tiny) -> None:
    m = zhllama_rs.Model(tiny.model)
    with pytest.raises(ValueError, match="tokenizer"):
        m.generate("从")
    with pytest.raises(ValueError, match="tokenizer"):
        m.stream()
    assert m.forward(1, 0).shape == (512,)  # forward needs none
