"""Shared fixtures for the zhllama_rs tests: random models written by
tools/gen_random_checkpoint.py (every test but conformance runs on these), the reference model
for conformance checks only (a visible skip when ../shared/reference is absent), and the native
`zhllama-rs` binary to compare with."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT / ".." / "shared" / "reference" / "llama2c"

# dim, hidden, layers, heads, kv heads, vocab, seq_len: grouped-query attention, a vocab big
# enough for the CJK stand-in characters of the random tokenizer, fast in a debug-free build.
TINY = (64, 172, 2, 8, 4, 512, 256)


@dataclass(frozen=True)
class Files:
    model: Path
    tokenizer: Path


def load_generator() -> ModuleType:
    """tools/gen_random_checkpoint.py as a module (random llama2.c checkpoints and tokenizers)."""
    path = ROOT / "tools" / "gen_random_checkpoint.py"
    spec = importlib.util.spec_from_file_location("zhllama_gen_random_checkpoint", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    return load_generator()


def write_model(
    gen: ModuleType, folder: Path, shape=TINY, version: int = 0, shared: bool = True, seed: int = 1
) -> Files:
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"model-v{version}-{'shared' if shared else 'sep'}-{seed}.bin"
    tok = folder / f"tok{shape[5]}.bin"
    gen.write_checkpoint(model, tuple(shape), version, shared, seed)
    if not tok.exists():
        gen.write_tokenizer(tok, shape[5])
    return Files(model, tok)


@pytest.fixture(scope="session")
def tiny(gen: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Files:
    """A random v0 model (GQA, shared classifier) and its random tokenizer."""
    return write_model(gen, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_v1(gen: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Files:
    """A random v1 model with a separate classifier."""
    return write_model(gen, tmp_path_factory.mktemp("tiny_v1"), version=1, shared=False, seed=2)


@pytest.fixture(scope="session")
def reference() -> Files:
    """stories260K and tok512, for conformance tests against llama2.c's recorded outputs."""
    model, tok = REFERENCE / "stories260K.bin", REFERENCE / "tok512.bin"
    if not (model.exists() and tok.exists()):
        pytest.skip(f"conformance test: needs {REFERENCE.resolve()} (absent)")
    return Files(model, tok)


@pytest.fixture(scope="session")
def native_cli() -> Path:
    """The native `zhllama-rs` binary: $ZHLLAMA_RS if set, else `cargo build -p zhllama-cli`."""
    env = os.environ.get("ZHLLAMA_RS")
    if env:
        return Path(env)
    if shutil.which("cargo") is None:
        pytest.fail("cargo is not on PATH and $ZHLLAMA_RS is not set: cannot build zhllama-rs")
    subprocess.run(["cargo", "build", "-q", "-p", "zhllama-cli"], cwd=ROOT, check=True)
    return ROOT / "target" / "debug" / "zhllama-rs"


def cli_args(
    files: Files,
    prompt: str | None = None,
    steps: int = 256,
    temperature: float = 1.0,
    top_p: float = 0.9,
    seed: int | None = None,
    stop_at_eos: bool = True,
) -> list[str]:
    """The zhllama-rs arguments equivalent to Model.generate's keyword arguments."""
    args = [str(files.model), "-z", str(files.tokenizer), "-n", str(steps)]
    args += ["-t", repr(temperature), "-p", repr(top_p)]
    if seed is not None:
        args += ["-s", str(seed)]
    if prompt is not None:
        args += ["-i", prompt]
    if not stop_at_eos:
        args.append("--no-eos-stop")
    return args


def python_cli() -> list[str]:
    """The wheel's command, run through this interpreter (the console script does the same)."""
    return [sys.executable, "-m", "zhllama_rs"]


def mask_rate(stderr: bytes) -> bytes:
    """stderr with the tokens/s figure blanked: the only part that differs between runs."""
    return re.sub(rb"achieved tok/s: [0-9.]+", b"achieved tok/s: X", stderr)


@dataclass(frozen=True)
class Helpers:
    """The helpers above, for test modules (which cannot import conftest in importlib mode)."""

    cli_args = staticmethod(cli_args)
    python_cli = staticmethod(python_cli)
    mask_rate = staticmethod(mask_rate)
    write_model = staticmethod(write_model)


@pytest.fixture(scope="session")
def h() -> Helpers:
    return Helpers()
