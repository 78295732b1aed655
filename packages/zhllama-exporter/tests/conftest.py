"""Tiny random models for the exporter tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zhllama_trainer.model import ModelArgs, Transformer

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference"

# name → ModelArgs kwargs: the shapes that matter to the formats
SHAPES = {
    "shared": dict(dim=32, n_layers=2, n_heads=4, vocab_size=64, max_seq_len=32),
    "separate": dict(
        dim=32, n_layers=2, n_heads=4, vocab_size=64, max_seq_len=32, shared_classifier=False
    ),
    "gqa": dict(dim=48, n_layers=2, n_heads=6, n_kv_heads=2, vocab_size=80, max_seq_len=24),
}


def random_model(seed: int = 0, **kwargs) -> Transformer:
    """A Transformer whose every tensor, norms included, holds distinct random values."""
    torch.manual_seed(seed)
    model = Transformer(ModelArgs(**kwargs))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)
    return model.eval()


@pytest.fixture(params=sorted(SHAPES))
def shaped_model(request) -> Transformer:
    return random_model(1, **SHAPES[request.param])


def reference_file(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared reference folder is not beside the repo)")
    return path


@pytest.fixture
def make_model():
    """random_model(seed, **ModelArgs kwargs), for tests that need their own shape."""
    return random_model


@pytest.fixture
def reference():
    """reference("llama2c", "stories260K.bin") → the path, or skip when it is absent."""
    return reference_file


def _write_ckpt(folder: Path, model: Transformer, tokenizer: Path | None = None, **extra) -> Path:
    """folder/ckpt.pt as the trainer writes it (weights, shape, step, tokenizer path)."""
    import dataclasses

    from zhllama_trainer.checkpoint import save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ckpt.pt"
    fields = {"config": {}, "iter_num": 10, "best_val_loss": 3.0, "best_iter": 10, **extra}
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "model_args": dataclasses.asdict(model.args),
            "tokenizer": str(tokenizer) if tokenizer else None,
            **fields,
        },
    )
    return path


@pytest.fixture
def make_ckpt():
    """make_ckpt(folder, model, tokenizer=None, **fields) → folder/ckpt.pt."""
    return _write_ckpt


@pytest.fixture(scope="session")
def small_tokenizer(tmp_path_factory):
    """A real sentencepiece model (vocab 1500) and its tok.bin, trained on the synthetic corpus."""
    from zhllama.registry import get_registry
    from zhllama_tokenizer.train import TrainOptions, train_tokenizer

    source = get_registry().create("sources", "synthetic", num_stories=3000)
    out = tmp_path_factory.mktemp("small_tok")
    return train_tokenizer(source, out, TrainOptions(vocab_size=1500, heldout_stories=50))
