"""The training loop on real shards: it learns, it resumes exactly, it reports its work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from zhllama.errors import ZhllamaError
from zhllama_trainer.checkpoint import load_checkpoint, load_model
from zhllama_trainer.config import make_config
from zhllama_trainer.train import train


def _train_losses(run: Path) -> dict[int, float]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["iter"]: r["loss"] for r in recs if r["kind"] == "train"}


def test_tiny_preset_learns_the_synthetic_corpus(shards: Path, tmp_path: Path, small: dict) -> None:
    # The tiny preset's shape (dim 64, 5 layers, 8 heads, 4 kv heads) on windows of 64 tokens:
    # from ln(1500) = 7.3 at the start to a validation loss below 5.7 within 60 steps.
    c = make_config(
        "tiny",
        {**small, "dim": 64, "n_layers": 5, "n_heads": 8,
         "n_kv_heads": 4, "max_seq_len": 64, "batch_size": 16, "gradient_accumulation_steps": 1,
         "max_iters": 60, "eval_interval": 60, "eval_iters": 4, "learning_rate": 5e-3,
         "warmup_iters": 5, "min_lr": 5e-4, "data_dir": shards, "out_dir": tmp_path / "run",
         "plot": True},
    )  # fmt: skip
    result = train(c)
    assert result.iter_num == 60
    assert result.last_val_loss is not None and result.last_val_loss < 5.7
    run = tmp_path / "run"
    losses = _train_losses(run)
    assert losses[1] > 7.0 and losses[60] < 5.8
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the best model is exported for zhllama-rs, with its tokenizer beside it
    assert (run / "model.bin").stat().st_size > 28
    assert (run / "tokenizer.bin").stat().st_size > 0
    model, args = load_model(run / "ckpt.pt")
    assert args.dim == 64 and args.vocab_size == 1500


def test_resume_equals_uninterrupted(shards: Path, tmp_path: Path, small: dict) -> None:
    base = {**small, "data_dir": shards, "max_iters": 12, "eval_interval": 4, "dropout": 0.1,
            "export_bin": False}  # fmt: skip
    whole = make_config("tiny", {**base, "out_dir": tmp_path / "whole"})
    train(whole)

    class Killed(Exception):
        pass

    def kill_at_7(it: int) -> None:
        if it == 7:  # after the checkpoint at 4, before the one at 8
            raise Killed

    cut = make_config("tiny", {**base, "out_dir": tmp_path / "cut"})
    with pytest.raises(Killed):
        train(cut, on_step=kill_at_7)
    assert load_checkpoint(tmp_path / "cut" / "ckpt.pt")["iter_num"] == 4
    train(cut, resume=True)

    assert _train_losses(tmp_path / "cut") == _train_losses(tmp_path / "whole")
    a = load_checkpoint(tmp_path / "whole" / "ckpt.pt")
    b = load_checkpoint(tmp_path / "cut" / "ckpt.pt")
    assert a["iter_num"] == b["iter_num"] == 12
    for name, t in a["model"].items():
        assert torch.equal(t, b["model"][name]), name


def test_resume_without_checkpoint_is_an_error(shards: Path, tmp_path: Path, small: dict) -> None:
    c = make_config("tiny", {**small, "data_dir": shards, "out_dir": tmp_path / "none"})
    with pytest.raises(ZhllamaError, match="no such checkpoint"):
        train(c, resume=True)


def test_long_steps_show_an_estimate_early(
    shards: Path, tmp_path: Path, small: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    # six micro-batches per step: the estimate comes from the first step's second micro-batch,
    # before any step has finished, as it must for a 42M step that takes minutes on a CPU
    from zhllama.cli import main

    settings = {**small, "gradient_accumulation_steps": 6, "max_iters": 3, "eval_interval": 3,
                "data_dir": shards, "out_dir": tmp_path / "run", "export_bin": False}  # fmt: skip
    assert main(["train", "size=tiny", *(f"{k}={v}" for k, v in settings.items())]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " per step (" in line]
    assert len(lines) == 1, err
    assert "tok/s on this device" in lines[0] and "for the 3 steps left" in lines[0]


def test_step_meter_reports_micro_batches() -> None:
    from zhllama_trainer.step_meter import StepMeter, human_duration

    meter = StepMeter(micro_batches=4, tokens_per_micro=1000, steps_left=10, refresh=0.0)
    meter.step_started()
    first = meter.micro_batch_done(1)
    assert first is not None and first.startswith("micro-batch 1/4, ")
    assert first.endswith(" tok/s")
    assert meter.micro_batch_done(2) is not None and meter.estimate() is not None
    assert meter.estimate() is None  # once
    assert meter.micro_batch_done(4) is None  # the step's end is the bar's own update
    assert [human_duration(s) for s in (3.25, 250, 19_200, 4 * 86_400 + 7_200)] == [
        "3.2 s", "4 min 10 s", "5 h 20 min", "4 d 2 h"
    ]  # fmt: skip
