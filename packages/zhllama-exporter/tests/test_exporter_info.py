"""`zhllama info FILE` on every kind of file a user holds, run through the real CLI."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from zhllama.cli import main


def _info(capsys, path):
    rc = main(["info", str(path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


@pytest.fixture
def model(make_model):
    return make_model(3, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=1500)


def test_ckpt_names_step_loss_and_tokenizer_hash(
    tmp_path, capsys, model, make_ckpt, small_tokenizer
):
    ckpt = make_ckpt(tmp_path / "run", model, small_tokenizer.model, iter_num=300, best_iter=250)
    facts = _info(capsys, ckpt)
    assert facts["format"] == "ckpt"
    assert (facts["dim"], facts["n_layers"], facts["n_heads"], facts["n_kv_heads"]) == (32, 2, 4, 2)
    assert facts["vocab_size"] == 1500 and facts["max_seq_len"] == model.args.max_seq_len
    assert facts["parameters"] == sum(p.numel() for p in model.parameters())
    assert (facts["training_step"], facts["best_step"], facts["best_val_loss"]) == (300, 250, 3.0)
    want = hashlib.sha256(small_tokenizer.model.read_bytes()).hexdigest()
    assert facts["tokenizer_sha256"] == want
    assert facts["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert facts["size_bytes"] == ckpt.stat().st_size


def test_moved_run_folder_finds_the_tokenizer_beside_it(
    tmp_path, capsys, model, make_ckpt, small_tokenizer
):
    gone = tmp_path / "gone" / "tok.model"
    ckpt = make_ckpt(tmp_path / "moved", model, gone)
    shutil.copy(small_tokenizer.model, tmp_path / "moved" / "tok.model")
    facts = _info(capsys, ckpt)
    assert facts["tokenizer"] == str(gone)
    beside = (tmp_path / "moved" / "tok.model").read_bytes()
    assert facts["tokenizer_sha256"] == hashlib.sha256(beside).hexdigest()


@pytest.mark.parametrize(
    ("fmt", "name", "dtype"),
    [
        ("llama2c", "m.bin", "fp32"),
        ("llama2c-v1", "m1.bin", "fp32"),
        ("llama2c-int8", "q.bin", "int8"),
        ("gguf", "m.gguf", "f16"),
        ("hf", "hf", "bfloat16"),
    ],
)
def test_exports(tmp_path, capsys, model, make_ckpt, small_tokenizer, fmt, name, dtype):
    ckpt = make_ckpt(tmp_path / "run", model, small_tokenizer.model)
    out = tmp_path / name
    args = ["export", str(ckpt), "-o", str(out), "--format", fmt]
    if fmt in ("gguf", "hf"):
        args += ["--dtype", {"gguf": "f16", "hf": "bf16"}[fmt]]
    assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    facts = _info(capsys, out)
    assert facts["format"] == fmt
    assert facts["dtype"] == dtype
    assert (facts["dim"], facts["vocab_size"], facts["n_kv_heads"]) == (32, 1500, 2)
    if fmt == "llama2c-int8":
        assert facts["group_size"] == 32
    if fmt == "gguf":
        assert facts["tokenizer"] == "inside (1500 pieces)"
    if fmt == "hf":
        assert facts["tokenizer"] == "inside"


def test_tokenizers(capsys, small_tokenizer):
    sp = _info(capsys, small_tokenizer.model)
    assert sp["format"] == "sentencepiece model"
    assert (sp["vocab_size"], sp["bos_id"], sp["eos_id"], sp["byte_fallback"]) == (1500, 1, 2, True)
    tb = _info(capsys, small_tokenizer.bin)
    assert tb["format"] == "llama2c tokenizer (tok.bin)"
    assert (tb["vocab_size"], tb["byte_tokens"]) == (1500, "<0xXX>")


def test_human_output_and_errors(tmp_path, capsys, small_tokenizer):
    assert main(["info", str(small_tokenizer.model)]) == 0
    out = capsys.readouterr().out
    assert "vocab_size" in out and "1500" in out
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x01\x02")
    assert main(["info", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "junk.bin" in err and "Traceback" not in err and err.count("\n") == 1
    assert main(["info", str(tmp_path / "nothing")]) == 1
    assert "no such file" in capsys.readouterr().err
