"""The stubs: they match the runtime module (mypy's stubtest), and a typed program using every
call passes `mypy --strict` while a wrong one fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mypy.api  # noqa: F401  (a dev dependency: fail here, not skip, when it is missing)
import pytest

GOOD = """
from pathlib import Path

import numpy as np
import numpy.typing as npt
import zhllama_rs


def story(path: Path, tok: str) -> str:
    model = zhllama_rs.Model(path, tokenizer=tok, threads=1)
    shape: tuple[int, int, int, int, int, int, int] = (
        model.dim, model.hidden_dim, model.n_layers, model.n_heads, model.n_kv_heads,
        model.vocab_size, model.seq_len,
    )
    flags: tuple[int, bool, bool, int, str] = (
        model.version, model.quantized, model.shared_classifier, model.threads, model.checkpoint
    )
    text: str = model.generate("从前", steps=shape[6], temperature=0.0, top_p=0.9, seed=None)
    stream: zhllama_rs.Stream = model.stream(prompt="", seed=1, stop_at_eos=False)
    pieces: list[str] = [p for p in stream]
    rate: float | None = stream.tokens_per_second
    ids: list[int] = stream.prompt_tokens + stream.generated_tokens
    done: bool = stream.done and stream.positions <= stream.steps
    logits: npt.NDArray[np.float32] = model.forward(zhllama_rs.BOS, 0)
    model.reset()
    chat: zhllama_rs.Chat = model.chat(steps=64, temperature=0.0, top_p=0.9, seed=None)
    reply: str = chat.say("hello", system="be kind") + chat.say(user="more")
    used: tuple[int, int, bool] = (chat.positions, chat.steps, chat.full)
    tokenizer: zhllama_rs.Tokenizer | None = model.tokenizer
    other = zhllama_rs.Tokenizer(tok, model.vocab_size)
    encoded: list[int] = other.encode(text, bos=True, eos=False)
    back: str = other.decode(encoded) + other.decode(np.array(encoded))
    version: str = zhllama_rs.__version__
    return f"{flags}{pieces}{rate}{ids}{done}{logits.shape}{reply}{used}{tokenizer}{back}{version}"
"""

BAD = """
import zhllama_rs

model = zhllama_rs.Model("m.bin")
model.generate(steps="many")
n: str = model.dim
model.dim = 3
ids: list[str] = model.stream().prompt_tokens
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module: numpy's stubs are analysed once."""
    return tmp_path_factory.mktemp("mypy_cache")


def mypy(tmp_path: Path, cache: Path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "usage.py"
    path.write_text(source)
    cmd = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(cache), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)


def test_stubs_match_the_runtime(tmp_path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "zhllama_rs._native"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_typed_usage_passes_mypy(tmp_path, cache) -> None:
    r = mypy(tmp_path, cache, GOOD)
    assert r.returncode == 0, r.stdout


def test_wrong_usage_fails_mypy(tmp_path, cache) -> None:
    r = mypy(tmp_path, cache, BAD)
    assert r.returncode == 1
    for line in (5, 6, 7, 8):
        assert f"usage.py:{line}: error" in r.stdout, r.stdout
