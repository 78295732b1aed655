"""zhllama_rs.Model on int8 weights: version-2 files and quantize="q8" at load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zhllama_rs

# conftest's TINY shape: dim 64, hidden 172 (group size 4 divides both; 8 divides only dim)
SHAPE = (64, 172, 2, 8, 4, 512, 256)


@dataclass(frozen=True)
class Files:
    model: Path
    tokenizer: Path


@pytest.fixture(scope="module")
def pair(gen, tmp_path_factory) -> tuple[Files, Files]:
    """The same random weights as a v1 file and as a v2 (int8) file written by the generator."""
    folder = tmp_path_factory.mktemp("int8")
    tok = folder / "tok512.bin"
    gen.write_tokenizer(tok, SHAPE[5])
    out = []
    for version in (1, 2):
        model = folder / f"v{version}.bin"
        gen.write_checkpoint(model, SHAPE, version, False, 4, 4)
        out.append(Files(model, tok))
    return out[0], out[1]


def test_v2_file_equals_quantize_at_load(pair) -> None:
    f32, q8 = pair
    a = zhllama_rs.Model(q8.model, q8.tokenizer, threads=1)
    b = zhllama_rs.Model(f32.model, f32.tokenizer, threads=2, quantize="q8")
    ref = zhllama_rs.Model(f32.model, threads=1)
    for m in (a, b):
        assert (m.version, m.quantized, m.group_size) == (2, True, 4)  # 64 and 172: 4 divides
    assert (ref.quantized, ref.group_size) == (False, 0)
    assert "version=2" in repr(a)
    for pos, tok in enumerate([1, 300, 301, 302, 400]):
        la, lb, lf = a.forward(tok, pos), b.forward(tok, pos), ref.forward(tok, pos)
        # the exporter's rounding (half to even) at load: the very same bytes, the same logits
        np.testing.assert_array_equal(la, lb)
        assert np.abs(la - lf).max() < 0.05 * np.abs(lf).max() + 1e-3
    text = a.generate("从前", steps=30, temperature=0.0)
    assert text == b.generate("从前", steps=30, temperature=0.0)


def test_group_size_option(pair) -> None:
    f32, q8 = pair
    m = zhllama_rs.Model(f32.model, quantize="q8", group_size=2)
    assert m.group_size == 2
    assert zhllama_rs.Model(q8.model, quantize="q8").group_size == 4  # already int8: as is


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(quantize="q4"), "unknown quantization"),
        (dict(quantize="q8", group_size=3), "group size 3"),
        (dict(quantize="q8", group_size=64), "hidden_dim 172"),
        (dict(quantize="q8", group_size=0), "group_size must be positive"),
        (dict(group_size=4), "group_size needs"),
    ],
)
def test_bad_quantize_arguments(pair, kwargs, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        zhllama_rs.Model(pair[0].model, **kwargs)


def test_bad_group_size_in_file(pair, tmp_path) -> None:
    data = bytearray(pair[1].model.read_bytes())
    data[37:41] = (8).to_bytes(4, "little")  # divides dim 64, not hidden 172
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="group size 8"):
        zhllama_rs.Model(bad)
    bad.write_bytes(pair[1].model.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        zhllama_rs.Model(bad)
