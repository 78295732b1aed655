"""`zhllama eval` as a user runs it: a checkpoint and its export agree, the full pass and the
random windows say which they are, and data of another tokenizer is refused."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from zhllama.cli import main
from zhllama.registry import get_registry
from zhllama_data.pretokenize import PretokenizeOptions, pretokenize
from zhllama_data.shards import ShardSet
from zhllama_tokenizer.train import TrainOptions, train_tokenizer
from zhllama_trainer.evaluation import full_windows


@pytest.fixture(scope="module")
def run(tiny_run: Path) -> Path:
    return tiny_run


def _eval(capsys, *args) -> tuple[float, str]:
    assert main(["eval", *map(str, args)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    loss = float(re.search(r"val loss (\d+\.\d+)", out).group(1))  # type: ignore[union-attr]
    return loss, out


def test_full_pass_of_checkpoint_and_export_agree(run: Path, shards: Path, capsys) -> None:
    ckpt_loss, out = _eval(capsys, run / "ckpt.pt", "--full", "device=cpu")
    windows = full_windows(ShardSet(shards), 64)
    tokens = sum(len(w) - 1 for w in windows)
    assert tokens == ShardSet(shards).num_tokens("val") - 1  # every token but the first, once
    assert f"full pass over the validation split of {shards}: {len(windows)} windows" in out
    assert f"{tokens:,} tokens" in out and "matches the shards" in out
    # the exported model.bin through the Rust engine: the same model, the same loss
    bin_loss, out = _eval(capsys, run / "model.bin", "--full", "threads=1")
    assert abs(bin_loss - ckpt_loss) < 2e-4
    assert "full pass" in out
    # an int8 export is evaluated as the engine runs it, int8 matmuls and all
    assert (
        main(["export", str(run / "ckpt.pt"), "-o", str(run / "q8.bin"), "-f", "llama2c-int8"]) == 0
    )
    capsys.readouterr()
    q8_loss, _ = _eval(capsys, run / "q8.bin", "--full")
    assert abs(q8_loss - bin_loss) < 0.02


def test_default_is_the_training_windows_and_says_so(run: Path, capsys) -> None:
    loss, out = _eval(capsys, run / "ckpt.pt", "eval_iters=2", "device=cpu")
    assert "16 random validation windows of 64 tokens" in out and "--full" in out
    assert np.isfinite(loss)
    again, _ = _eval(capsys, run / "ckpt.pt", "eval_iters=2", "device=cpu")
    assert again == loss  # the windows are fixed


def test_data_of_another_tokenizer_is_refused(
    run: Path, tmp_path: Path, capsys, tmp_path_factory
) -> None:
    # same vocab size, another tokenizer: only the recorded sha256 tells them apart
    out = tmp_path_factory.mktemp("other")
    source = get_registry().create("sources", "synthetic", num_stories=2000, seed=99)
    tok = train_tokenizer(source, out, TrainOptions(vocab_size=1500, heldout_stories=50))
    opts = PretokenizeOptions(val_fraction=0.02, source_settings={"num_stories": 500, "seed": 99})
    pretokenize("synthetic", tok.model, out / "shards", opts)
    capsys.readouterr()
    for model in (run / "ckpt.pt", run / "model.bin"):
        assert main(["eval", str(model), f"data_dir={out / 'shards'}"]) == 1
        err = capsys.readouterr().err
        assert "tokenized with another tokenizer" in err and "Traceback" not in err
    # an export moved out of its run folder needs to be told where the data is
    alone = tmp_path / "alone.bin"
    shutil.copy(run / "model.bin", alone)
    assert main(["eval", str(alone)]) == 1
    assert "add data_dir=SHARDS" in capsys.readouterr().err
