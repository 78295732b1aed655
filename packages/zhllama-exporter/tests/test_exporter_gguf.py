"""GGUF export (`zhllama export ... --format gguf`): the file llama.cpp's own reader sees, the
round trips, every dtype, the tokenizer inside, and the errors a user can cause.

(llama.cpp itself running these files is tests/test_gguf_llamacpp.py.)
"""

from __future__ import annotations

import dataclasses

import gguf
import numpy as np
import pytest
import torch
from zhllama.cli import main
from zhllama.registry import get_registry
from zhllama_exporter.components import ExportConfig
from zhllama_exporter.gguf_format import read_gguf, tensor_names
from zhllama_exporter.gguf_vocab import BYTE, CONTROL, NORMAL, UNKNOWN, from_sentencepiece
from zhllama_exporter.load import load_any
from zhllama_exporter.quant import dequantize, quantize
from zhllama_tokenizer.train import TrainOptions, train_tokenizer
from zhllama_trainer.checkpoint import save_checkpoint

VOCAB = 1500


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A real sentencepiece model (and its tok.bin) trained on the synthetic corpus."""
    source = get_registry().create("sources", "synthetic", num_stories=3000)
    out = tmp_path_factory.mktemp("gguf_tok")
    return train_tokenizer(source, out, TrainOptions(vocab_size=VOCAB, heldout_stories=50))


def _ckpt(folder, model, tokenizer=None):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ckpt.pt"
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "model_args": dataclasses.asdict(model.args),
            "config": {},
            "iter_num": 1,
            "best_val_loss": 3.0,
            "tokenizer": str(tokenizer) if tokenizer else None,
        },
    )
    return path


def _run(capsys, checkpoint, out, *argv):
    rc = main(["export", str(checkpoint), "-o", str(out), *map(str, argv)])
    return rc, capsys.readouterr().err


def _fields(path):
    return {k: f.contents() for k, f in gguf.GGUFReader(path).fields.items()}


@pytest.fixture
def model(make_model):
    # dim 64 and hidden 192 (SwiGLU's 2/3·4·dim rounded to 32): every row splits into q8_0 blocks
    return make_model(5, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=VOCAB)


def test_metadata_and_tensors_as_formats_says(tmp_path, capsys, model, tokenizer):
    ckpt = _ckpt(tmp_path / "run", model, tokenizer.model)
    out = tmp_path / "m.gguf"
    rc, err = _run(capsys, ckpt, out)  # the .gguf name picks the format
    assert rc == 0, err
    assert f"tokenizer: {tokenizer.model}" in err
    f = _fields(out)
    a = model.args
    assert f["general.architecture"] == "llama"
    assert f["general.file_type"] == gguf.LlamaFileType.ALL_F32
    expect = {
        "llama.context_length": a.max_seq_len,
        "llama.embedding_length": a.dim,
        "llama.block_count": a.n_layers,
        "llama.feed_forward_length": model.layers[0].feed_forward.w1.weight.shape[0],
        "llama.attention.head_count": a.n_heads,
        "llama.attention.head_count_kv": a.n_kv_heads,
        "llama.rope.dimension_count": a.dim // a.n_heads,
        "llama.vocab_size": VOCAB,
    }
    assert {k: f[k] for k in expect} == expect
    assert f["llama.rope.freq_base"] == 10000.0
    assert f["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    # the tokenizer, piece for piece from the .model
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer.model))
    assert f["tokenizer.ggml.model"] == "llama" and f["tokenizer.ggml.pre"] == "default"
    assert f["tokenizer.ggml.tokens"] == [sp.id_to_piece(i) for i in range(VOCAB)]
    assert f["tokenizer.ggml.scores"] == pytest.approx([sp.get_score(i) for i in range(VOCAB)])
    types = f["tokenizer.ggml.token_type"]
    assert types[:3] == [UNKNOWN, CONTROL, CONTROL]
    assert types[3:259] == [BYTE] * 256 and f["tokenizer.ggml.tokens"][3 + 0x41] == "<0x41>"
    assert set(types[259:]) == {NORMAL}
    assert (f["tokenizer.ggml.bos_token_id"], f["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert f["tokenizer.ggml.unknown_token_id"] == 0
    assert f["tokenizer.ggml.add_bos_token"] is True and f["tokenizer.ggml.add_eos_token"] is False
    assert f["tokenizer.ggml.add_space_prefix"] is True
    # tensors: llama.cpp's names, shared classifier → no output.weight, no rotary permutation
    r = gguf.GGUFReader(out)
    got = {t.name: t for t in r.tensors}
    assert "output.weight" not in got
    sd = model.state_dict()
    for ours, theirs in tensor_names(load_any(ckpt).weights.shape).items():
        t = got[theirs]
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        assert list(t.shape) == list(reversed(sd[ours].shape))  # GGUF lists innermost first
        np.testing.assert_array_equal(np.asarray(t.data), sd[ours].numpy())


def test_round_trip_f32_gguf_to_v0_is_the_direct_export(tmp_path, capsys, model, tokenizer):
    ckpt = _ckpt(tmp_path, model, tokenizer.model)
    for argv in [
        (ckpt, tmp_path / "direct.bin", "--format", "llama2c"),
        (ckpt, tmp_path / "m.gguf", "--format", "gguf", "--dtype", "f32"),
        (tmp_path / "m.gguf", tmp_path / "via.bin", "--format", "llama2c"),
    ]:
        rc, err = _run(capsys, *argv)
        assert rc == 0, err
    assert "read " in err and "gguf, f32; tokenizer: sentencepiece, 1500 tokens" in err
    assert (tmp_path / "via.bin").read_bytes() == (tmp_path / "direct.bin").read_bytes()


def test_separate_classifier_and_the_registry_reader(tmp_path, make_model, tokenizer):
    m = make_model(2, dim=32, n_layers=2, n_heads=4, vocab_size=VOCAB, shared_classifier=False)
    exporter = get_registry().create("exporters", "gguf", ExportConfig(tokenizer=tokenizer.model))
    exporter.export(m, tmp_path / "s.gguf")
    assert "output.weight" in {t.name for t in gguf.GGUFReader(tmp_path / "s.gguf").tensors}
    back = exporter.read(tmp_path / "s.gguf")
    assert not back.args.shared_classifier
    for name, t in m.state_dict().items():
        assert torch.equal(back.state_dict()[name], t), name


@pytest.mark.parametrize("dtype", ["f16", "bf16", "q8_0"])
def test_dtypes_read_back(tmp_path, capsys, model, tokenizer, dtype):
    ckpt = _ckpt(tmp_path, model, tokenizer.model)
    out = tmp_path / f"{dtype}.gguf"
    rc, err = _run(capsys, ckpt, out, "--dtype", dtype)
    assert rc == 0, err
    g = read_gguf(out)
    assert g.dtype == dtype and g.vocab is not None and g.vocab.size == VOCAB
    assert _fields(out)["general.file_type"] == {"f16": 1, "bf16": 32, "q8_0": 7}[dtype]
    sd = model.state_dict()
    for name, got in g.weights.tensors.items():
        want = sd[name]
        if want.ndim == 1:  # norms stay f32
            assert torch.equal(got, want), name
        elif dtype == "f16":
            assert torch.equal(got, want.half().float()), name
        elif dtype == "bf16":
            assert torch.equal(got, want.bfloat16().float()), name
        else:
            # blocks of 32, one scale each: rounding moves a value at most half a scale step,
            # and the scale's f16 rounding (2^-11 relative) at most 127 · 2^-11 steps more
            q, scale = quantize(want, 32)
            step = scale.repeat_interleave(32).reshape(want.shape)
            assert ((got - want).abs() <= step * (0.5 + 127 / 2048) + 1e-7).all(), name
            assert (got - dequantize(q, scale, 32)).abs().max() < 1e-3, name


def test_int8_file_to_q8_0_keeps_its_int8_values(tmp_path, capsys, model, tokenizer):
    ckpt = _ckpt(tmp_path, model, tokenizer.model)
    rc, err = _run(capsys, ckpt, tmp_path / "m.bin", "--format", "llama2c-int8", "--group-size", 64)
    assert rc == 0, err
    rc, err = _run(
        capsys, tmp_path / "m.bin", tmp_path / "q.gguf", "--dtype", "q8_0",
        "--tokenizer", tokenizer.model,
    )  # fmt: skip
    assert rc == 0, err
    assert "q8_0 blocks keep the int8 values" in err and "(gguf, q8_0)" in " ".join(err.split())
    int8 = load_any(tmp_path / "m.bin").weights.int8
    assert int8 is not None and int8.group_size == 64
    blocks = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(tmp_path / "q.gguf").tensors}
    for ours, theirs in tensor_names(load_any(ckpt).weights.shape).items():
        if ours not in int8.tensors:
            continue
        q, scale = int8.tensors[ours]
        b = blocks[theirs].reshape(-1, 34)
        np.testing.assert_array_equal(b[:, 2:].view(np.int8).reshape(q.shape), q.numpy())
        d = b[:, :2].copy().view(np.float16).reshape(-1)
        np.testing.assert_array_equal(d, scale.numpy().astype(np.float16).repeat(2))


def test_int8_groups_that_cannot_map_are_refused(tmp_path, capsys, model, tokenizer):
    ckpt = _ckpt(tmp_path, model, tokenizer.model)
    rc, err = _run(capsys, ckpt, tmp_path / "m.bin", "--format", "llama2c-int8", "--group-size", 16)
    assert rc == 0, err
    rc, err = _run(
        capsys, tmp_path / "m.bin", tmp_path / "q.gguf", "--dtype", "q8_0",
        "--tokenizer", tokenizer.model,
    )  # fmt: skip
    assert rc != 0
    assert "int8 groups of 16 do not map onto GGUF q8_0's blocks of 32" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "q.gguf").exists()
    # the same file to f16 is fine (its dequantized values)
    rc, err = _run(
        capsys, tmp_path / "m.bin", tmp_path / "h.gguf", "--dtype", "f16",
        "--tokenizer", tokenizer.model,
    )  # fmt: skip
    assert rc == 0, err


def test_tokenizer_from_tok_bin_gives_the_same_file(tmp_path, capsys, model, tokenizer):
    ckpt = _ckpt(tmp_path, model)
    for tok, folder in [(tokenizer.model, "a"), (tokenizer.bin, "b")]:
        rc, err = _run(capsys, ckpt, tmp_path / folder / "m.gguf", "--tokenizer", tok)
        assert rc == 0, err
    assert (tmp_path / "a" / "m.gguf").read_bytes() == (tmp_path / "b" / "m.gguf").read_bytes()
    assert from_sentencepiece(tokenizer.model).remove_extra_whitespaces


def test_tokenizer_is_found_beside_a_moved_run(tmp_path, capsys, model, tokenizer):
    run = tmp_path / "moved"
    ckpt = _ckpt(run, model, tmp_path / "nowhere" / "tokenizer.model")
    (run / "tokenizer.model").write_bytes(tokenizer.model.read_bytes())
    rc, err = _run(capsys, ckpt, run / "m.gguf")
    assert rc == 0, err
    assert f"tokenizer: {run / 'tokenizer.model'}" in err
    assert read_gguf(run / "m.gguf").vocab is not None


def test_missing_tokenizer_is_an_error_unless_weights_only(tmp_path, capsys, model):
    ckpt = _ckpt(tmp_path, model, tmp_path / "gone.model")
    rc, err = _run(capsys, ckpt, tmp_path / "m.gguf")
    assert rc != 0 and "no tokenizer found for the GGUF" in err and "--weights-only" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.gguf").exists()
    rc, err = _run(capsys, ckpt, tmp_path / "m.gguf", "--weights-only")
    assert rc == 0, err
    assert "tokenizer.ggml.model" not in _fields(tmp_path / "m.gguf")
    assert read_gguf(tmp_path / "m.gguf").vocab is None


def test_gguf_to_gguf_keeps_the_tokenizer(tmp_path, capsys, model, tokenizer):
    ckpt = _ckpt(tmp_path, model, tokenizer.model)
    assert _run(capsys, ckpt, tmp_path / "a.gguf")[0] == 0
    rc, err = _run(capsys, tmp_path / "a.gguf", tmp_path / "b.gguf", "--dtype", "q8_0")
    assert rc == 0, err
    assert "tokenizer: the tokenizer inside" in err
    a, b = _fields(tmp_path / "a.gguf"), _fields(tmp_path / "b.gguf")
    assert a["tokenizer.ggml.tokens"] == b["tokenizer.ggml.tokens"]
    assert a["tokenizer.ggml.token_type"] == b["tokenizer.ggml.token_type"]


def test_bad_input_one_line_nothing_written(tmp_path, capsys, model, tokenizer):
    ckpt = _ckpt(tmp_path, model, tokenizer.model)
    assert _run(capsys, ckpt, tmp_path / "m.gguf")[0] == 0
    data = (tmp_path / "m.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    (tmp_path / "head.gguf").write_bytes(data[:40])
    cases = [
        ((tmp_path / "cut.gguf", tmp_path / "x.bin"), "cut.gguf"),
        ((tmp_path / "head.gguf", tmp_path / "x.bin"), "not a readable GGUF file"),
        ((ckpt, tmp_path / "x.gguf", "--format", "llama2c"), "a .gguf name for format llama2c"),
        ((ckpt, tmp_path / "x.gguf", "--dtype", "q4_0"), "unknown dtype 'q4_0' for gguf"),
        ((ckpt, tmp_path / "x.gguf", "--group-size", "32"), "group size only applies"),
        ((ckpt, tmp_path / "x.bin", "--weights-only"), "--weights-only applies to hf and gguf"),
        ((ckpt, tmp_path / "x.gguf", "--tokenizer", ckpt), "ckpt.pt: "),
        ((ckpt, tmp_path / "x.gguf", "--tokenizer", tmp_path / "none.model"), "no such tokenizer"),
    ]
    for argv, message in cases:
        rc, err = _run(capsys, *argv)
        assert rc != 0, argv
        assert message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt.pt",
        "cut.gguf",
        "head.gguf",
        "m.gguf",
    ]


def test_q8_0_rows_not_a_multiple_of_32_are_stored_f16(tmp_path, capsys, make_model, tokenizer):
    # hidden 72: w1/w3 rows are dim (32) long and become q8_0, w2's rows are 72 long: f16
    m = make_model(4, dim=32, n_layers=2, n_heads=4, vocab_size=VOCAB, hidden_dim=72)
    ckpt = _ckpt(tmp_path, m, tokenizer.model)
    rc, err = _run(capsys, ckpt, tmp_path / "m.gguf", "--dtype", "q8_0")
    assert rc == 0, err
    assert "2 matrices stored f16: their rows are not a multiple of 32 long" in " ".join(
        err.split()
    )
    g = read_gguf(tmp_path / "m.gguf")
    assert g.dtype == "mixed (q8_0, f16)"
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    assert types["blk.0.ffn_down.weight"] == "F16" and types["blk.0.ffn_up.weight"] == "Q8_0"
    w2 = m.state_dict()["layers.1.feed_forward.w2.weight"]
    assert torch.equal(g.weights.tensors["layers.1.feed_forward.w2.weight"], w2.half().float())


def test_listed_as_a_plugin(capsys):
    assert main(["plugins"]) == 0
    assert "gguf" in capsys.readouterr().out
