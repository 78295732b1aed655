"""torch → each fp32 format → torch gives back exactly the same tensors and logits."""

from __future__ import annotations

import hashlib

import pytest
import torch
from zhllama.registry import get_registry
from zhllama_exporter.load import load_any, sniff_format

FP32_FORMATS = ["llama2c", "llama2c-v1", "hf", "gguf"]
SUFFIX = {"hf": "", "gguf": ".gguf"}


def _out(tmp_path, fmt):
    return tmp_path / f"model_{fmt}{SUFFIX.get(fmt, '.bin')}"


def _exporter(fmt):
    # the random models have no tokenizer: hf and gguf are asked for weights only
    return get_registry().create(
        "exporters", fmt, **({"weights_only": True} if fmt in ("gguf", "hf") else {})
    )


@pytest.mark.parametrize("fmt", FP32_FORMATS)
def test_fp32_round_trip_is_bit_exact(tmp_path, shaped_model, fmt):
    exporter = _exporter(fmt)
    out = _out(tmp_path, fmt)
    exporter.export(shaped_model, out)
    back = exporter.read(out)

    assert back.args.shared_classifier == shaped_model.args.shared_classifier
    assert back.args.kv_heads == shaped_model.args.kv_heads
    want, got = shaped_model.state_dict(), back.state_dict()
    assert set(got) == set(want)
    for name, t in want.items():
        assert torch.equal(got[name], t), name
    if back.args.shared_classifier:
        assert back.output.weight is back.tok_embeddings.weight
    tokens = torch.randint(0, shaped_model.args.vocab_size, (2, 9), generator=torch.Generator())
    with torch.no_grad():
        assert torch.equal(back(tokens), shaped_model(tokens))
    assert sniff_format(out) == fmt


@pytest.mark.parametrize("fmt", FP32_FORMATS)
def test_reexport_from_any_format_is_identical(tmp_path, shaped_model, fmt):
    """A file read back and written again in the same format is the same bytes."""
    exporter = _exporter(fmt)
    first, second = _out(tmp_path / "a", fmt), _out(tmp_path / "b", fmt)
    exporter.export(shaped_model, first)
    exporter.export(load_any(first), second)
    if fmt == "hf":
        for name in ("model.safetensors", "config.json", "generation_config.json"):
            assert (first / name).read_bytes() == (second / name).read_bytes(), name
    else:
        assert first.read_bytes() == second.read_bytes()


def test_stories260k_v0_reproduced_byte_for_byte(tmp_path, reference):
    ref = reference("llama2c", "stories260K.bin")
    exporter = get_registry().create("exporters", "llama2c")
    model = exporter.read(ref)
    args = model.args
    assert (args.dim, args.hidden, args.n_layers, args.n_heads, args.kv_heads) == (64, 172, 5, 8, 4)
    assert (args.vocab_size, args.max_seq_len, args.shared_classifier) == (512, 512, True)
    out = tmp_path / "stories260K.bin"
    exporter.export(model, out)
    assert out.stat().st_size == ref.stat().st_size
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(ref.read_bytes()).hexdigest()


def test_compiled_model_exports_like_the_plain_one(tmp_path, make_model):
    """The trainer may hand over its torch.compile'd model; the wrapper is looked through."""
    model = make_model(5, dim=32, n_layers=1, n_heads=4, vocab_size=48)
    exporter = get_registry().create("exporters", "llama2c")
    exporter.export(model, tmp_path / "plain.bin")
    exporter.export(torch.compile(model), tmp_path / "compiled.bin")  # compiles lazily: cheap
    assert (tmp_path / "plain.bin").read_bytes() == (tmp_path / "compiled.bin").read_bytes()
