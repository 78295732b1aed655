"""The `sentencepiece` tokenizer component: a thin, typed wrapper around a .model file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm
from zhllama.errors import ZhllamaError


def load_processor(model: Path) -> tuple[spm.SentencePieceProcessor, bytes]:
    """Load a sentencepiece model; a missing or broken file is a ZhllamaError naming it."""
    model = Path(model)
    if not model.is_file():
        raise ZhllamaError(f"{model}: no such tokenizer model")
    data = model.read_bytes()
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(data)
    except (RuntimeError, OSError) as e:
        raise ZhllamaError(f"{model}: not a sentencepiece model ({e})") from None
    return sp, data


class SentencePieceTokenizer:
    """Encode and decode with a sentencepiece model; ids carry no BOS/EOS unless asked."""

    def __init__(self, model: Path, threads: int = 1) -> None:
        self.model = Path(model)
        self.sp, data = load_processor(self.model)
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.threads = threads
        self.vocab_size: int = self.sp.vocab_size()
        self.bos_id: int = self.sp.bos_id()
        self.eos_id: int = self.sp.eos_id()
        self.unk_id: int = self.sp.unk_id()
        self.name = "sentencepiece"

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]:
        # one C++ call for the whole list: far cheaper than a Python loop over encode()
        return self.sp.encode(list(texts), num_threads=self.threads)

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([int(i) for i in ids])

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(i)

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({str(self.model)!r}, vocab_size={self.vocab_size})"
