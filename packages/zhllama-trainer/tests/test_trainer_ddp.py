"""DDP: two CPU processes (gloo, launched by torchrun) equal one process with the same global
batch, because each micro-batch slot has its own data stream whatever the number of ranks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from zhllama_trainer.checkpoint import load_checkpoint
from zhllama_trainer.config import make_config
from zhllama_trainer.train import train


def _losses(run: Path) -> list[float]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if r["kind"] == "train"]


def test_two_gloo_ranks_match_one_process(shards: Path, tmp_path: Path, small: dict) -> None:
    settings = {**small, "data_dir": shards, "max_iters": 6, "eval_interval": 3,
                "gradient_accumulation_steps": 2, "export_bin": False}  # fmt: skip
    train(make_config("tiny", {**settings, "out_dir": tmp_path / "one"}))

    items = [f"{k}={v}" for k, v in settings.items()] + [f"out_dir={tmp_path / 'two'}"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "zhllama_trainer", "size=tiny", *items]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == 6
    for a, b in zip(one, two, strict=True):
        assert abs(a - b) < 1e-5 * max(1.0, abs(a)), (one, two)
    wa = load_checkpoint(tmp_path / "one" / "ckpt.pt")["model"]
    wb = load_checkpoint(tmp_path / "two" / "ckpt.pt")["model"]
    for name, t in wa.items():
        torch.testing.assert_close(t, wb[name], atol=1e-5, rtol=1e-4, msg=name)
