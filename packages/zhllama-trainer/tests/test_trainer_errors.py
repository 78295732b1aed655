"""Bad settings and missing data are one clear ZhllamaError, before any training starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama_trainer.config import make_config
from zhllama_trainer.model import ModelArgs
from zhllama_trainer.train import train


def test_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(ZhllamaError, match="unknown setting learning_rat .*known settings"):
        make_config("15M", {"learning_rat": "1e-3"})


def test_unknown_size() -> None:
    with pytest.raises(ZhllamaError, match="unknown size '7B'; presets: tiny, 15M, 42M, 110M"):
        make_config("7B")


def test_heads_must_divide_dim() -> None:
    with pytest.raises(ZhllamaError, match="n_heads=7 does not divide dim=288"):
        make_config("15M", {"n_heads": "7"})
    with pytest.raises(ZhllamaError, match="n_kv_heads=4 must divide n_heads=6"):
        ModelArgs(n_kv_heads=4)


def test_bad_value_type() -> None:
    with pytest.raises(ZhllamaError, match="batch_size must be int, not 'many'"):
        make_config("tiny", {"batch_size": "many"})


def test_missing_data_dir(tmp_path: Path) -> None:
    c = make_config("tiny", {"data_dir": tmp_path / "nowhere", "out_dir": tmp_path / "run"})
    with pytest.raises(ZhllamaError, match="nowhere: no pretokenized data here"):
        train(c)


def test_vocab_mismatch_between_data_and_model(shards: Path, tmp_path: Path, small: dict) -> None:
    # only a vocab_size the user gives is checked against the data
    settings = {**small, "data_dir": shards, "out_dir": tmp_path / "run", "vocab_size": 5000}
    with pytest.raises(ZhllamaError, match="vocab_size=5000 but the data .* vocabulary of 1500"):
        train(make_config("15M", settings))


def test_presets_take_the_vocab_from_the_data(
    shards: Path, tmp_path: Path, small: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    # `zhllama train size=42M data_dir=…` on data of a 1500-piece tokenizer: no vocab setting
    settings = {k: v for k, v in small.items() if k not in ("max_seq_len",)}
    settings |= {"data_dir": shards, "out_dir": tmp_path / "run", "max_iters": 1,
                 "max_seq_len": 32, "export_bin": False}  # fmt: skip
    argv = ["train", "size=42M", *(f"{k}={v}" for k, v in settings.items())]
    assert main(argv) == 0, capsys.readouterr().err
    from zhllama_trainer.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run" / "ckpt.pt")["model_args"]["vocab_size"] == 1500


def test_cli_reports_errors_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # key=value items and --key value options mix, as `just train` forwards them
    argv = ["train", "size=tiny", "--max-iters", "3", f"--data-dir={tmp_path / 'none'}"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "no pretokenized data here" in err and "Traceback" not in err
    assert main(["train", "--size", "tiny", "bogus=1"]) == 1
    assert "unknown setting bogus" in capsys.readouterr().err
