"""The sentencepiece vocabulary as GGUF stores it (`tokenizer.ggml.*`, FORMATS.md §6).

Three sources give the same `Vocab`: a sentencepiece `.model` (everything, read from its
protobuf), a GGUF file's own metadata (for reading back and re-exporting), and a llama2.c
`tok*.bin`. The `.bin` holds only pieces and scores; the rest follows from the layout every
llama2.c tokenizer has (FORMATS.md §2): id 0 `<unk>`, ids 1 and 2 the control tokens BOS and
EOS, ids 3..258 the bytes 0x00..0xFF, everything after a normal piece, the dummy space prefix on
and runs of spaces collapsed (llama2.c's encoder always does both). A `.model` with user-defined
pieces or other normalizer settings is therefore only fully described by the `.model` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhllama.errors import ZhllamaError

SPACE = "\u2581"  # sentencepiece's visible space
# GGUF token types (gguf.TokenType), the values sentencepiece's ModelProto uses as well
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
BYTE_IDS = range(3, 3 + 256)


@dataclass
class Vocab:
    tokens: list[str]
    scores: list[float]
    types: list[int]
    bos_id: int = 1
    eos_id: int = 2
    unk_id: int = 0
    add_bos: bool = True
    add_space_prefix: bool = True
    remove_extra_whitespaces: bool = True
    source: str = ""  # where it came from, for messages

    def __post_init__(self) -> None:
        n = len(self.tokens)
        if len(self.scores) != n or len(self.types) != n:
            raise ZhllamaError(
                f"{self.source}: {n} tokens but {len(self.scores)} scores and "
                f"{len(self.types)} token types"
            )
        for name, i in (("BOS", self.bos_id), ("EOS", self.eos_id), ("UNK", self.unk_id)):
            if not 0 <= i < n:
                raise ZhllamaError(f"{self.source}: {name} id {i} is outside the {n} tokens")

    @property
    def size(self) -> int:
        return len(self.tokens)

    def describe(self) -> str:
        flags = [f"bos {self.bos_id}", f"eos {self.eos_id}", f"unk {self.unk_id}"]
        flags.append("adds BOS" if self.add_bos else "no BOS")
        flags.append("space prefix" if self.add_space_prefix else "no space prefix")
        byte_count = sum(t == BYTE for t in self.types)
        return f"sentencepiece, {self.size} tokens ({byte_count} byte tokens), {', '.join(flags)}"


def from_sentencepiece(model: Path) -> Vocab:
    """Everything from a `.model`: pieces as stored (with `▁`, bytes as `<0xXX>`), scores, the
    piece types, the special ids and the normalizer's dummy prefix and whitespace rule."""
    from sentencepiece import sentencepiece_model_pb2

    model = Path(model)
    if not model.is_file():
        raise ZhllamaError(f"{model}: no such tokenizer file")
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(model.read_bytes())
    except Exception as e:  # protobuf's DecodeError and friends
        raise ZhllamaError(f"{model}: not a sentencepiece model ({type(e).__name__})") from None
    if not proto.pieces:
        raise ZhllamaError(f"{model}: not a sentencepiece model (no pieces)")
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    if spec.model_type not in (1, 2):  # UNIGRAM, BPE: what llama.cpp's "llama" tokenizer runs
        raise ZhllamaError(f"{model}: sentencepiece model type {spec.model_type} is not BPE")
    return Vocab(
        tokens=[p.piece for p in proto.pieces],
        scores=[float(p.score) for p in proto.pieces],
        types=[int(p.type) for p in proto.pieces],
        bos_id=spec.bos_id,
        eos_id=spec.eos_id,
        unk_id=spec.unk_id,
        add_space_prefix=norm.add_dummy_prefix,
        remove_extra_whitespaces=norm.remove_extra_whitespaces,
        source=str(model),
    )


def from_tokbin(path: Path, vocab_size: int) -> Vocab:
    """A llama2.c `tok*.bin` of `vocab_size` entries, with the layout the module doc states
    (checked where the file can show it: the byte tokens must sit at ids 3..258)."""
    from zhllama_tokenizer.binfile import read_tokenizer_bin

    path = Path(path)
    tb = read_tokenizer_bin(path, vocab_size)
    if tb.byte_format is None:
        raise ZhllamaError(
            f"{path}: ids 3..258 are not the 256 byte tokens, so the token types cannot be "
            "known from a .bin; pass the sentencepiece .model with --tokenizer"
        )
    tokens, types = [], []
    for i, piece in enumerate(tb.pieces):
        if i == 0:
            tokens.append("<unk>")
            types.append(UNKNOWN)
        elif i in (1, 2):
            tokens.append("<s>" if i == 1 else "</s>")
            types.append(CONTROL)
        elif tb.is_byte(i):
            tokens.append(f"<0x{piece[0]:02X}>")
            types.append(BYTE)
        else:
            tokens.append(piece.decode("utf-8", errors="replace").replace(" ", SPACE))
            types.append(NORMAL)
    return Vocab(tokens, list(tb.scores), types, source=str(path))


def from_gguf_fields(fields: dict[str, Any], where: str) -> Vocab | None:
    """The vocabulary in a GGUF file's metadata (already decoded to Python values), or None when
    the file has none; a tokenizer model other than sentencepiece's ("llama") is an error."""
    kind = fields.get("tokenizer.ggml.model")
    if kind is None:
        return None
    if kind != "llama":
        raise ZhllamaError(f"{where}: tokenizer model {kind!r} is not sentencepiece (llama)")
    tokens = fields.get("tokenizer.ggml.tokens")
    if not tokens:
        raise ZhllamaError(f"{where}: tokenizer.ggml.tokens is missing")
    n = len(tokens)
    return Vocab(
        tokens=list(tokens),
        scores=list(fields.get("tokenizer.ggml.scores", [0.0] * n)),
        types=list(fields.get("tokenizer.ggml.token_type", [NORMAL] * n)),
        bos_id=int(fields.get("tokenizer.ggml.bos_token_id", 1)),
        eos_id=int(fields.get("tokenizer.ggml.eos_token_id", 2)),
        unk_id=int(fields.get("tokenizer.ggml.unknown_token_id", 0)),
        add_bos=bool(fields.get("tokenizer.ggml.add_bos_token", True)),
        add_space_prefix=bool(fields.get("tokenizer.ggml.add_space_prefix", True)),
        remove_extra_whitespaces=bool(fields.get("tokenizer.ggml.remove_extra_whitespaces", True)),
        source=where,
    )


def load_vocab(path: Path, vocab_size: int) -> Vocab:
    """A tokenizer file named by the user: a sentencepiece `.model` or a llama2.c `.bin`
    (told apart by the name's suffix, else by the first byte)."""
    path = Path(path)
    if not path.is_file():
        raise ZhllamaError(f"{path}: no such tokenizer file")
    with open(path, "rb") as f:
        head = f.read(1)
    # a .model starts with the protobuf tag of its first piece (0x0a: field 1, length-delimited)
    is_model = path.suffix == ".model" or head == b"\x0a"
    vocab = from_sentencepiece(path) if is_model else from_tokbin(path, vocab_size)
    if vocab.size != vocab_size:
        raise ZhllamaError(
            f"{path}: tokenizer has {vocab.size} tokens but the model's vocab is {vocab_size}"
        )
    return vocab
