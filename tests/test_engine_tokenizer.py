"""The Rust engine's tokenizer against sentencepiece itself (FORMATS.md §2).

`zhllama-rs --tokenize --null -z TOK.bin` encodes each NUL-terminated record of stdin and prints
one line of ids per record; these must equal sentencepiece's ids with the matching `.model` file,
for thousands of generated lines: Chinese prose, punctuation, digits, Latin words, emoji, rare and
traditional characters, runs of spaces, leading/trailing spaces, newlines and tabs.

Uses ../shared/reference (skips when absent), the `sentencepiece` package (skips when missing),
and the zhllama-rs binary: $ZHLLAMA_RS if set, else a fresh `cargo build -p zhllama-cli`.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT.parent / "shared" / "reference"

spm = pytest.importorskip("sentencepiece", reason="sentencepiece is not installed")


@pytest.fixture(scope="module")
def engine() -> Path:
    env = os.environ.get("ZHLLAMA_RS")
    if env:
        return Path(env)
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not on PATH and $ZHLLAMA_RS is not set: cannot build zhllama-rs")
    subprocess.run(["cargo", "build", "-q", "-p", "zhllama-cli"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "zhllama-rs"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared reference folder is not here)")
    return path


def rust_encode(engine: Path, tok_bin: Path, texts: list[str]) -> list[list[int]]:
    data = "".join(t + "\0" for t in texts).encode("utf-8")  # NUL-terminated records
    out = subprocess.run(
        [str(engine), "--tokenize", "--null", "-z", str(tok_bin)],
        input=data,
        capture_output=True,
        check=True,
    ).stdout.decode()
    lines = out.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) == len(texts)
    return [[int(x) for x in line.split()] for line in lines]


PUNCT = list("，。！？；：“”‘’、（）《》…—·「」『』,.!?;:'\"()-") + ["……", "——"]
LATIN = ["the", "Lily", "Ben", "cat", "OK", "hello", "World", "GPU", "x", "naïve", "café", "Zürich"]
EMOJI = ["😀", "🎉", "🐱", "❤️", "👍🏽", "🇨🇳", "🧑‍💻", "☀", "⭐"]
RARE = ["龘", "靐", "齉", "𠀀", "𪚥", "㐀", "鱻", "麤", "爨", "躞", "纛", "\U0002a6a5"]
TRAD = list("說話時間們國會學體藝術長東風華龍鳳覺營葉")
SPACES = [" ", "  ", "   ", "\u3000", "\t", "\n", "\n\n", " \n ", "\u2581", " \u2581 "]


def generated_lines(pieces: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 40)):
            r = rng.random()
            if r < 0.55:
                parts.append(rng.choice(pieces))
            elif r < 0.65:
                parts.append(rng.choice(PUNCT))
            elif r < 0.72:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 8))))
            elif r < 0.79:
                parts.append(rng.choice(LATIN))
            elif r < 0.83:
                parts.append(rng.choice(EMOJI))
            elif r < 0.87:
                parts.append(rng.choice(RARE + TRAD))
            elif r < 0.90:
                parts.append(chr(rng.randint(0x4E00, 0x9FFF)))
            else:
                parts.append(rng.choice(SPACES))
        line = "".join(parts)
        if rng.random() < 0.2:
            line = " " * rng.randint(1, 3) + line
        if rng.random() < 0.2:
            line = line + " " * rng.randint(1, 3)
        out.append(line)
    return out


EDGE = [
    "",
    " ",
    "   ",
    "\n",
    "从前，有一个小女孩叫莉莉。",
    "  hello   world  ",
    "数字 12345 和 emoji 😀🎉!",
    "龘靐齉 繁體中文",
    "a\nb\tc\u3000d",
    "Tom 說：“你好！”",
    "<s>",
    "</s>",
    "\n<s>\n",
    "<unk>",
    "<0x41>",
    "Ã©",
    "\x01\x7f\x1b",
    "▁",
    "▁▁ ▁",
    "a▁b",
    "▁a",
    "a▁▁ b",
    "a ▁",
    "  ▁ a  ▁ ",
    "a  ▁  b",
    "\u3000a\u3000",
    " 。 ",
]


def _check(engine: Path, model: Path, tok_bin: Path, n: int, seed: int) -> None:
    sp = spm.SentencePieceProcessor(model_file=str(model))
    pieces = [
        sp.id_to_piece(i).replace("\u2581", " ")
        for i in range(sp.vocab_size())
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))
    ]
    texts = EDGE + generated_lines(pieces, n, seed)
    got = rust_encode(engine, tok_bin, texts)
    bad = [(t, g, sp.encode(t)) for t, g in zip(texts, got, strict=True) if g != sp.encode(t)]
    assert not bad, f"{len(bad)} of {len(texts)} differ; first: {bad[0]!r}"


def test_tok5000_legacy_bytes_equals_sentencepiece(engine: Path) -> None:
    zh = REF / "zh"
    _check(engine, _need(zh / "tok5000.model"), _need(zh / "tok5000.bin"), 3000, 5000)


def test_tok512_equals_sentencepiece(engine: Path) -> None:
    ll = REF / "llama2c"
    _check(engine, _need(ll / "tok512.model"), _need(ll / "tok512.bin"), 2000, 512)


def test_decode_roundtrip_matches_sentencepiece_text(engine: Path) -> None:
    """Generating is covered by the Rust tests; here: the ids of a text decode to the text."""
    zh = REF / "zh"
    model, tok = _need(zh / "tok5000.model"), _need(zh / "tok5000.bin")
    sp = spm.SentencePieceProcessor(model_file=str(model))
    texts = ["从前，有一个小女孩叫莉莉。她喜欢😀和龘。", "Lily 說：“你好！” 12345"]
    for t, ids in zip(texts, rust_encode(engine, tok, texts), strict=True):
        assert sp.decode(ids) == t
