"""Registry entries of zhllama-tokenizer; light module: sentencepiece loads inside the factory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhllama.registry import Component


@dataclass
class SentencePieceConfig:
    model: Path = Path("tok5000.model")
    # threads sentencepiece may use inside one encode_batch call; pretokenize runs one per process
    threads: int = 1


def _make_sentencepiece(config: SentencePieceConfig) -> Any:
    from zhllama_tokenizer.spm import SentencePieceTokenizer

    return SentencePieceTokenizer(config.model, threads=config.threads)


sentencepiece = Component(
    name="sentencepiece",
    description="sentencepiece BPE model (.model): encode, decode; train with zhllama tokenizer",
    factory=_make_sentencepiece,
    config=SentencePieceConfig,
)
