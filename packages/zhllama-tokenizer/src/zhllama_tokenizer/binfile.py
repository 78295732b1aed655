"""llama2.c tokenizer files (`tok*.bin`, FORMATS.md §2): the writer and a reader for both
byte-token formats.

Layout: u32 max_token_length, then per id: f32 score, u32 byte length n, n bytes. The vocab
size is not stored, so the reader takes it from the caller (the model header) and checks that
the file holds exactly that many entries.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from zhllama.atomic import atomic_write_bytes
from zhllama.errors import ZhllamaError

BOS_TEXT = b"\n<s>\n"
EOS_TEXT = b"\n</s>\n"
FIRST_BYTE_ID = 3  # ids 3..258 are the byte-fallback tokens 0x00..0xFF
ByteFormat = Literal["hex", "latin1"]


def _byte_text(b: int, byte_format: ByteFormat) -> bytes:
    # "hex": today's exporter stores the piece text `<0xXX>`; "latin1": the older exporter
    # stored chr(b) as UTF-8, which collides with real pieces (tok5000.bin's 120 duplicates)
    return f"<0x{b:02X}>".encode() if byte_format == "hex" else chr(b).encode()


def entries_from_model(model: Path, byte_format: ByteFormat = "hex") -> list[tuple[bytes, float]]:
    """(stored bytes, score) per id, as llama2.c's exporter derives them from a .model file."""
    from zhllama_tokenizer.spm import load_processor

    sp, _ = load_processor(model)
    entries = []
    for i in range(sp.vocab_size()):
        piece, score = sp.id_to_piece(i), sp.get_score(i)
        if i == sp.bos_id():
            text = BOS_TEXT
        elif i == sp.eos_id():
            text = EOS_TEXT
        elif sp.is_byte(i):
            text = _byte_text(int(piece[3:5], 16), byte_format)
        else:
            text = piece.replace("\u2581", " ").encode()
        entries.append((text, score))
    return entries


def encode_tokenizer_bin(entries: list[tuple[bytes, float]]) -> bytes:
    max_len = max((len(t) for t, _ in entries), default=0)
    parts = [struct.pack("<I", max_len)]
    for text, score in entries:
        parts.append(struct.pack("<fI", score, len(text)))
        parts.append(text)
    return b"".join(parts)


def export_llama2c(model: Path, out: Path | None = None, byte_format: ByteFormat = "hex") -> Path:
    """Write `tokN.bin` for `model` (default: beside it, `.model` → `.bin`); returns the path."""
    model = Path(model)
    out = Path(out) if out is not None else model.with_suffix(".bin")
    atomic_write_bytes(out, encode_tokenizer_bin(entries_from_model(model, byte_format)))
    return out


@dataclass
class TokenizerBin:
    """A tok*.bin file as data. `pieces[i]` is what id i stands for: its raw byte for a byte
    token (whichever way the file stored it), else the stored text."""

    path: Path
    max_token_length: int
    pieces: list[bytes]
    scores: list[float]
    byte_format: ByteFormat | None  # None: the file has no byte-fallback tokens
    lookup: dict[bytes, int] = field(repr=False, default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def is_byte(self, i: int) -> bool:
        return self.byte_format is not None and FIRST_BYTE_ID <= i < FIRST_BYTE_ID + 256

    def piece_id(self, text: bytes) -> int | None:
        """The id of a normal piece (never a byte token), or None."""
        return self.lookup.get(text)


def _detect_byte_format(stored: list[bytes]) -> ByteFormat | None:
    if len(stored) < FIRST_BYTE_ID + 256:
        return None
    for fmt in ("hex", "latin1"):
        if all(stored[FIRST_BYTE_ID + b] == _byte_text(b, fmt) for b in range(256)):
            return fmt  # type: ignore[return-value]
    return None


def read_tokenizer_bin(path: Path, vocab_size: int) -> TokenizerBin:
    """Read a tok*.bin of exactly `vocab_size` entries, in either byte-token format."""
    path = Path(path)
    if not path.is_file():
        raise ZhllamaError(f"{path}: no such tokenizer file")
    data = path.read_bytes()
    if len(data) < 4:
        raise ZhllamaError(f"{path}: too short for a tokenizer file ({len(data)} bytes)")
    (max_len,) = struct.unpack_from("<I", data, 0)
    pos, stored, scores = 4, [], []
    for i in range(vocab_size):
        if pos + 8 > len(data):
            raise ZhllamaError(
                f"{path}: ends after {i} entries, expected {vocab_size} (wrong vocab size?)"
            )
        score, n = struct.unpack_from("<fI", data, pos)
        pos += 8
        if n > max_len or pos + n > len(data):
            raise ZhllamaError(f"{path}: entry {i} has a bad length {n}")
        stored.append(data[pos : pos + n])
        scores.append(score)
        pos += n
    if pos != len(data):
        raise ZhllamaError(
            f"{path}: {len(data) - pos} bytes left after {vocab_size} entries "
            "(the model's vocab size does not match this tokenizer)"
        )
    byte_format = _detect_byte_format(stored)
    pieces = list(stored)
    lookup: dict[bytes, int] = {}
    for i, text in enumerate(stored):
        if byte_format is not None and FIRST_BYTE_ID <= i < FIRST_BYTE_ID + 256:
            pieces[i] = bytes([i - FIRST_BYTE_ID])
            continue  # text → id lookups never answer with a byte token
        lookup.setdefault(text, i)
    return TokenizerBin(path, max_len, pieces, scores, byte_format, lookup)
