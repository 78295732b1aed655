"""Shared fixtures: one real sentencepiece model trained on the synthetic corpus per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from zhllama.registry import get_registry
from zhllama_tokenizer.train import TrainOptions, TrainResult, train_tokenizer

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference"
# the synthetic corpus uses about 950 distinct characters; with character coverage 1.0 every
# one is a piece, so a vocab of 1,500 leaves room for ~290 merges
VOCAB = 1500
STORIES = 3000


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    source = get_registry().create("sources", "synthetic", num_stories=STORIES)
    out = tmp_path_factory.mktemp("tok")
    return train_tokenizer(source, out, TrainOptions(vocab_size=VOCAB, heldout_stories=200))


@pytest.fixture(scope="session")
def stories() -> list[str]:
    """Stories after the training range: text the tokenizer never saw."""
    source = get_registry().create("sources", "synthetic", num_stories=40, seed=10_000)
    return list(source.stories())


def _reference(*parts: str) -> Path:
    path = REFERENCE.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference file {path} is absent (../shared/reference not checked out)")
    return path


@pytest.fixture
def reference():
    """`reference("zh", "tok5000.bin")`: a path under ../shared/reference, or skip."""
    return _reference


@pytest.fixture(scope="session")
def vocab_size() -> int:
    return VOCAB
