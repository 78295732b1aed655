"""`zhllama export` end to end, and the errors a user can cause: one line, nothing left behind."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry
from zhllama_exporter.load import load_any
from zhllama_trainer.checkpoint import save_checkpoint


def _ckpt(tmp_path, model, tokenizer=None):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "model_args": dataclasses.asdict(model.args),
            "config": {},
            "iter_num": 10,
            "best_val_loss": 3.0,
            "tokenizer": str(tokenizer) if tokenizer else None,
        },
    )
    return path


def _run(capsys, checkpoint, out, *argv):
    rc = main(["export", str(checkpoint), "-o", str(out), *map(str, argv)])
    return rc, capsys.readouterr().err


def _leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_ckpt_to_every_format_and_back(tmp_path, capsys, make_model):
    model = make_model(3, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=48)
    ckpt = _ckpt(tmp_path, model)
    src = ckpt
    for fmt, out in [
        ("llama2c", "a.bin"),
        ("hf --weights-only", "b_hf"),
        ("llama2c-v1", "c.bin"),
        ("llama2c", "d.bin"),
    ]:
        rc, err = _run(capsys, src, tmp_path / out, "--format", *fmt.split())
        assert rc == 0, err
        src = tmp_path / out
    # ckpt → v0 → hf → v1 → v0 lost nothing
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "d.bin").read_bytes()
    back = get_registry().create("exporters", "llama2c-v1").read(tmp_path / "c.bin")
    for name, t in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], t), name


def test_key_value_settings_as_just_passes_them(tmp_path, capsys, make_model):
    model = make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=48)
    ckpt = _ckpt(tmp_path, model)
    rc, err = _run(capsys, ckpt, tmp_path / "q.bin", "format=llama2c-int8", "group_size=8")
    assert rc == 0, err
    assert "group size 8" in err and "max |err|" in err
    assert load_any(tmp_path / "q.bin").format == "llama2c-int8"


def test_hf_takes_the_checkpoints_tokenizer(tmp_path, capsys, make_model, reference):
    tok = reference("llama2c", "tok512.model")
    model = make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=512)
    ckpt = _ckpt(tmp_path, model, tokenizer=tok)
    rc, err = _run(capsys, ckpt, tmp_path / "hf", "--format", "hf", "--dtype", "bf16")
    assert rc == 0, err
    assert (tmp_path / "hf" / "tokenizer.json").is_file()
    assert (tmp_path / "hf" / "tokenizer.model").read_bytes() == tok.read_bytes()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "onnx"], "unknown export format 'onnx'"),
        (["--format", "llama2c", "--dtype", "fp16"], "stores fp32 weights, not fp16"),
        (["--format", "llama2c-int8", "--dtype", "bf16"], "stores fp32 weights, not bf16"),
        (["--format", "hf", "--dtype", "int4"], "unknown dtype 'int4'"),
        (["--format", "llama2c-int8", "--group-size", "64"], "must be positive and divide"),
        (["--format", "llama2c-v1", "--group-size", "16"], "only applies to llama2c-int8"),
        (["--format", "hf", "--tokenizer", "nope.model"], "no such tokenizer"),
        (["shape=7"], "unknown setting shape"),
    ],
)
def test_bad_settings_are_one_line_and_write_nothing(tmp_path, capsys, make_model, args, message):
    model = make_model(3, dim=48, n_layers=1, n_heads=4, vocab_size=48, hidden_dim=96)
    ckpt = _ckpt(tmp_path, model)
    out = tmp_path / "out"
    rc, err = _run(capsys, ckpt, out, *args)
    assert rc == 1
    assert message in " ".join(err.split()), err
    assert "Traceback" not in err
    assert _leftovers(tmp_path, {"ckpt.pt"}) == []


def _truncated(tmp_path, model):
    path = tmp_path / "good.bin"
    get_registry().create("exporters", "llama2c").export(model, path)
    bad = tmp_path / "model.bin"
    bad.write_bytes(path.read_bytes()[:-100])
    path.unlink()
    return bad


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda d, m: d / "missing.pt", "no such checkpoint"),
        (lambda d, m: (d / "x.bin").write_bytes(b"\x01\x02") and d / "x.bin", "too short"),
        (lambda d, m: (d / "x.bin").write_bytes(b"\0" * 300) and d / "x.bin", "implausible"),
        (_truncated, "needs"),
        (lambda d, m: (d / "e").mkdir() or d / "e", "without config.json"),
    ],
)
def test_bad_checkpoints_are_clear_errors(tmp_path, capsys, make_model, make_bad, message):
    model = make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=48)
    src = tmp_path / "in"
    src.mkdir()
    bad = make_bad(src, model)
    for fmt, out in [("llama2c", "o.bin"), ("hf", "o_hf")]:
        rc, err = _run(capsys, bad, tmp_path / out, "--format", fmt)
        assert rc == 1 and message in " ".join(err.split()), err
    assert _leftovers(tmp_path, {"in"}) == []


def test_not_a_torch_checkpoint(tmp_path, capsys):
    import zipfile

    path = tmp_path / "ckpt.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "not a checkpoint")
    rc, err = _run(capsys, path, tmp_path / "o.bin")
    assert rc == 1 and "not a readable zhllama checkpoint" in " ".join(err.split())
    assert _leftovers(tmp_path, {"ckpt.pt"}) == []


def test_reader_names_the_right_format(tmp_path, make_model):
    model = make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=48)
    v1 = tmp_path / "m.bin"
    get_registry().create("exporters", "llama2c-v1").export(model, v1)
    with pytest.raises(ZhllamaError, match="version 1 file, not version 0"):
        get_registry().create("exporters", "llama2c").read(v1)


def test_failed_hf_export_keeps_the_old_directory(tmp_path, make_model):
    """A failure halfway through an hf export leaves an existing export whole."""
    model = make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=48)
    out = tmp_path / "hf"
    get_registry().create("exporters", "hf").export(model, out)
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir())
    huge = make_model(4, dim=32, n_layers=1, n_heads=4, vocab_size=48)
    with torch.no_grad():
        huge.norm.weight[0] = 1e6  # beyond fp16's range: fails after config checks passed
    with pytest.raises(ZhllamaError, match="fp16"):
        get_registry().create("exporters", "hf", dtype="fp16").export(huge, out)
    assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before
    assert _leftovers(tmp_path, {"hf"}) == []


def test_never_replaces_a_foreign_directory_or_the_input(tmp_path, capsys, make_model):
    model = make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=48)
    ckpt = _ckpt(tmp_path, model)
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    rc, err = _run(capsys, ckpt, folder, "--format", "hf")
    assert rc == 1 and "refusing to replace" in " ".join(err.split())
    assert (folder / "notes.txt").read_text() == "keep me"
    rc, err = _run(capsys, ckpt, ckpt, "--format", "llama2c")
    assert rc == 1 and "overwrite the checkpoint" in " ".join(err.split())
    assert _leftovers(tmp_path, {"ckpt.pt", "runs"}) == []


def test_positional_out_still_works_with_one_deprecation_line(tmp_path, capsys, make_model):
    ckpt = _ckpt(tmp_path, make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=48))
    assert main(["export", str(ckpt), str(tmp_path / "a.bin"), "format=llama2c"]) == 0
    err = capsys.readouterr().err
    assert f"deprecated: a positional OUT ({tmp_path / 'a.bin'})" in " ".join(err.split())
    assert load_any(tmp_path / "a.bin").format == "llama2c"


@pytest.mark.parametrize(
    ("out", "fmt", "message"),
    [
        ("m.bin", "gguf", "a .bin name for format gguf, which writes a GGUF file"),
        ("m.bin", "hf", "a .bin name for format hf, which writes a directory"),
        ("m.gguf", "llama2c-int8", "a .gguf name for format llama2c-int8"),
    ],
)
def test_an_extension_that_contradicts_the_format_is_an_error(
    tmp_path, capsys, make_model, out, fmt, message
):
    # issue 16 (6): `export … out/m.gguf --format llama2c` used to write a llama2c file
    ckpt = _ckpt(tmp_path, make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=48))
    rc, err = _run(capsys, ckpt, tmp_path / out, "--format", fmt)
    assert rc == 1 and message in " ".join(err.split()), err
    assert not (tmp_path / out).exists()


def test_hf_finds_the_tokenizer_of_a_moved_run(tmp_path, capsys, make_model, reference):
    # issue 16 (1): the checkpoint records /nowhere/run/tokenizer.model; the run's copy beside
    # the moved ckpt.pt is the one
    tok = reference("llama2c", "tok512.model")
    moved = tmp_path / "moved" / "a"
    moved.mkdir(parents=True)
    (moved / "tokenizer.model").write_bytes(tok.read_bytes())
    model = make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=512)
    ckpt = _ckpt(moved, model, tokenizer="/nowhere/run/tokenizer.model")
    rc, err = _run(capsys, ckpt, moved / "hf", "--format", "hf")
    assert rc == 0, err
    assert f"tokenizer: {moved / 'tokenizer.model'}" in err
    assert (moved / "hf" / "tokenizer.model").read_bytes() == tok.read_bytes()


def test_hf_without_a_tokenizer_is_an_error_unless_weights_only(tmp_path, capsys, make_model):
    model = make_model(3, dim=32, n_layers=1, n_heads=4, vocab_size=48)
    v0 = tmp_path / "m.bin"
    get_registry().create("exporters", "llama2c").export(model, v0)
    rc, err = _run(capsys, v0, tmp_path / "hf", "--format", "hf")
    assert rc == 1 and "no tokenizer found for the HF export" in err, err
    assert "-z TOK.model" in err and "--weights-only" in err
    assert not (tmp_path / "hf").exists()
    rc, err = _run(capsys, v0, tmp_path / "hf", "--format", "hf", "--weights-only")
    assert rc == 0 and "no tokenizer files in the HF directory" in err, err
    assert not (tmp_path / "hf" / "tokenizer.json").exists()
    # every file of the directory has the same permissions (model.safetensors was 0600)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "hf").iterdir()}
    assert len(set(modes.values())) == 1, modes
