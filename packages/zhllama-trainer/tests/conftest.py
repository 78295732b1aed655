"""Shared fixtures: real synthetic stories → a real sentencepiece model → real shards, once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zhllama.registry import get_registry
from zhllama_data.pretokenize import PretokenizeOptions, pretokenize
from zhllama_tokenizer.train import TrainOptions, train_tokenizer

STORIES = 3000
VOCAB = 1500  # the synthetic corpus has ~950 distinct characters

# Small models keep the suite fast on two cores; tests that compare runs use one thread so
# results do not depend on how the machine splits work.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shard directory of 3,000 synthetic stories (~470k tokens), 2% of them validation."""
    out = tmp_path_factory.mktemp("data")
    source = get_registry().create("sources", "synthetic", num_stories=STORIES)
    tok = train_tokenizer(source, out, TrainOptions(vocab_size=VOCAB, heldout_stories=50))
    opts = PretokenizeOptions(val_fraction=0.02, source_settings={"num_stories": STORIES})
    pretokenize("synthetic", tok.model, out / "shards", opts)
    return out / "shards"


# A model small enough that a dozen steps take a second or two.
_SMALL = {
    "dim": 32,
    "n_layers": 2,
    "n_heads": 4,
    "n_kv_heads": 2,
    "max_seq_len": 32,
    "batch_size": 4,
    "gradient_accumulation_steps": 2,
    "learning_rate": 3e-3,
    "warmup_iters": 2,
    "eval_iters": 2,
    "log_interval": 1,
    "progress": False,
    "plot": False,
    "device": "cpu",
    "dtype": "float32",
    "threads": 1,
}


@pytest.fixture
def small() -> dict[str, object]:
    """TrainConfig overrides for a tiny fast model (a fresh copy per test)."""
    return dict(_SMALL)


@pytest.fixture(scope="session")
def tiny_run(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder (ckpt.pt, model.bin, tokenizer files) of a 20-step model on `shards`."""
    from zhllama_trainer.config import make_config
    from zhllama_trainer.train import train

    out = tmp_path_factory.mktemp("tiny_run")
    settings = {"data_dir": shards, "out_dir": out, "dim": 32, "n_layers": 2, "n_heads": 4,
                "n_kv_heads": 2, "max_seq_len": 64, "batch_size": 8, "max_iters": 20,
                "eval_interval": 20, "eval_iters": 2, "learning_rate": 5e-3, "warmup_iters": 2,
                "progress": False, "plot": False, "device": "cpu", "dtype": "float32"}  # fmt: skip
    train(make_config("tiny", settings))
    return out
