"""Bad settings and missing data are one clear ZhllamaError, before any training starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from zhllama.cli import main
from zhllama.errors import ZhllamaError
from zhllama_trainer.checkpoint import load_model
from zhllama_trainer.config import make_config
from zhllama_trainer.model import ModelArgs
from zhllama_trainer.train import train


def test_unknown_key_lists_the_known_ones() -> None:
    known = "unknown setting learning_rat; known settings: size, .*learning_rate"
    with pytest.raises(ZhllamaError, match=known):
        make_config("15M", {"learning_rat": "1e-3"})


def test_unknown_size() -> None:
    with pytest.raises(ZhllamaError, match="unknown size '7B'; presets: 110M, 15M, 42M, tiny"):
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


def test_cli_reports_errors_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # key=value items and --key value options mix, as `just train` forwards them
    argv = ["train", "size=tiny", "--max-iters", "3", f"--data-dir={tmp_path / 'none'}"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "no pretokenized data here" in err and "Traceback" not in err
    assert main(["train", "--size", "tiny", "bogus=1"]) == 1
    assert "unknown setting bogus" in capsys.readouterr().err


def test_vocab_comes_from_the_data_unless_set(shards: Path, tmp_path: Path, small: dict, capsys):
    # issue 16 (12): `zhllama train size=42M data_dir=…` on 1500-token data just trains
    items = [f"{k}={v}" for k, v in small.items()] + [f"data_dir={shards}", "max_iters=1"]
    assert main(["train", "size=15M", *items, f"out_dir={tmp_path / 'a'}"]) == 0
    assert load_model(tmp_path / "a" / "ckpt.pt")[1].vocab_size == 1500
    capsys.readouterr()
    assert main(["train", "size=15M", *items, "vocab_size=5000", "-o", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "vocab_size=5000 but the data" in err and "set vocab_size=1500" in err
    assert "--data-dir" not in err


def test_old_spellings_work_with_one_deprecation_line(tmp_path: Path, capsys) -> None:
    assert main(["train", "--size", "tiny", f"--data-dir={tmp_path / 'none'}"]) == 1
    err = capsys.readouterr().err
    assert "deprecated: --size VALUE" in err and "write size=VALUE" in err
    assert "deprecated: --data-dir VALUE" in err
    assert "no pretokenized data here" in err and "set data_dir=FOLDER" in err
