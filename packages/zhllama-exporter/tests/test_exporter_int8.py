"""llama2c-int8 (version 2): group sizes that divide dim and hidden, errors within the bound."""

from __future__ import annotations

import pytest
import torch
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry
from zhllama_exporter.llama2c import HEADER_BYTES, read_group_size
from zhllama_exporter.quant import choose_group_size, quantize
from zhllama_exporter.report import quant_report, quantized_names
from zhllama_exporter.weights import from_model


@pytest.mark.parametrize(
    "dim, hidden, expected",
    [(288, 768, 32), (512, 1376, 32), (768, 2048, 64), (64, 172, 4), (48, 128, 16)],
)
def test_group_size_divides_dim_and_hidden(dim, hidden, expected):
    gs = choose_group_size(dim, hidden)
    assert gs == expected
    assert dim % gs == 0 and hidden % gs == 0


@pytest.mark.parametrize("bad", [64, 0, -8, 3])
def test_explicit_group_size_must_divide_both(bad):
    with pytest.raises(ZhllamaError, match="group size"):
        choose_group_size(512, 1376, bad)


def test_explicit_group_size_is_used(tmp_path, make_model):
    model = make_model(0, dim=64, n_layers=1, n_heads=4, vocab_size=32, hidden_dim=128)
    out = tmp_path / "m.bin"
    get_registry().create("exporters", "llama2c-int8", group_size=16).export(model, out)
    assert read_group_size(out) == 16


def _check_within_bound(model, back, group_size):
    """Norms come back exact; every quantized value moves at most half its group's scale."""
    want, got = from_model(model).tensors, from_model(back).tensors
    quantized = set(quantized_names(from_model(model)))
    for name, w in want.items():
        if name not in quantized:
            assert torch.equal(got[name], w), name
            continue
        _, scale = quantize(w, group_size)
        err = (got[name] - w).abs().reshape(-1, group_size)
        assert got[name].shape == w.shape
        assert bool((err <= scale[:, None] / 2 * (1 + 1e-5) + 1e-12).all()), name


def test_int8_round_trip_within_bound_and_report(tmp_path, shaped_model):
    out = tmp_path / "m.bin"
    exporter = get_registry().create("exporters", "llama2c-int8")
    exporter.export(shaped_model, out)
    back = exporter.read(out)
    gs = read_group_size(out)
    _check_within_bound(shaped_model, back, gs)

    report = quant_report(from_model(shaped_model), gs)
    print(f"\nint8 error per tensor (group size {gs}):")
    for e in report:
        print(f"  {e.name:34s} max {e.max_abs:.2e}  mean {e.mean_abs:.2e}  ratio {e.ratio:.3f}")
        assert e.within_bound and 0 < e.mean_abs <= e.max_abs, e
    # the dequantized model stays close to the fp32 one
    tokens = torch.arange(8)[None] % shaped_model.args.vocab_size
    with torch.no_grad():
        diff = (back(tokens) - shaped_model(tokens)).abs().max().item()
    assert diff < 0.05


def _size_v2(model, gs):
    w = from_model(model)
    norms = sum(t.numel() for n, t in w.tensors.items() if n.endswith("norm.weight"))
    q = sum(w.tensors[n].numel() for n in quantized_names(w))
    return HEADER_BYTES + 4 * norms + q + 4 * (q // gs)


@pytest.mark.parametrize(
    "dim, hidden, heads, expected_gs",
    [(64, 172, 8, 4), (512, 1376, 8, 32)],  # stories260K's FFN and the 42M shape
)
def test_hidden_not_divisible_by_64_drops_nothing(
    tmp_path, make_model, dim, hidden, heads, expected_gs
):
    model = make_model(
        2, dim=dim, hidden_dim=hidden, n_layers=1, n_heads=heads, vocab_size=32, max_seq_len=16
    )
    out = tmp_path / "m.bin"
    exporter = get_registry().create("exporters", "llama2c-int8")
    exporter.export(model, out)
    gs = read_group_size(out)
    assert gs == expected_gs and hidden % 64 != 0
    assert out.stat().st_size == _size_v2(model, gs)
    back = exporter.read(out)
    _check_within_bound(model, back, gs)
    # w2's rows are `hidden` long: their last columns (where a dim-only group size would lose
    # values) came back too
    w2 = model.layers[0].feed_forward.w2.weight
    got = back.layers[0].feed_forward.w2.weight
    assert (got[:, -(hidden % 64) :] != 0).float().mean() > 0.9
    assert torch.allclose(got, w2, atol=w2.abs().max().item() / 127)
