"""What the zhllama-server tests share: the real release binaries, random-weight models made by
tools/gen_random_checkpoint.py, a running server on a free port, and `zhllama-rs` to compare
seeded texts with. Helpers come as fixtures (pytest's importlib mode keeps test modules from
importing each other)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[3]


def _binary(name: str) -> Path:
    """The command as users get it: the venv's (the wheel's console script), else the build's."""
    for p in (ROOT / ".venv" / "bin" / name, ROOT / "target" / "release" / name):
        if p.exists():
            return p
    raise RuntimeError(f"{name} is not built: run `just build`")


class Server:
    """A running zhllama-server; `url` is its address."""

    def __init__(self, model: Path, tok: Path, *args: str, exe: Path | None = None):
        exe = exe or _binary("zhllama-server")
        cmd = [str(exe), str(model), "-z", str(tok), "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert "listening on http://" in line, (line, self.proc.stderr.read())
        self.url = line.split("listening on ")[1].strip()
        deadline = time.monotonic() + 30
        while httpx.get(self.url + "/health").status_code != 200:
            assert time.monotonic() < deadline, "the model never loaded"
            time.sleep(0.05)

    def client(self, key: str = "none") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0)

    def metric(self, name: str) -> float:
        for line in httpx.get(self.url + "/metrics").text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def _model(d: Path, shape: str) -> tuple[Path, Path]:
    m, t = d / f"{shape}.bin", d / f"tok-{shape}.bin"
    gen = [sys.executable, str(ROOT / "tools" / "gen_random_checkpoint.py"), "--shape", shape]
    subprocess.run([*gen, "-o", str(m), "--tokenizer-out", str(t)], check=True, capture_output=True)
    return m, t


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """260K shape (seq_len 512): fast; a tokenizer of byte tokens and CJK characters."""
    return _model(tmp_path_factory.mktemp("server"), "260K")


@pytest.fixture(scope="module")
def slow(tmp_path_factory) -> tuple[Path, Path]:
    """15M shape on one thread: slow enough to be caught mid-story."""
    return _model(tmp_path_factory.mktemp("server15m"), "15M")


@pytest.fixture(scope="module")
def long(tmp_path_factory) -> tuple[Path, Path]:
    """42M shape (seq_len 1024) on one thread: a long story takes seconds, time enough for a
    browser to press Stop mid-way."""
    return _model(tmp_path_factory.mktemp("server42m"), "42M")


@pytest.fixture(scope="module")
def server(small) -> Iterator[Server]:
    """One server on the small model for the tests that need no flags of their own."""
    s = Server(*small, "--threads", "1")
    yield s
    assert s.stop() == 0


def run_zhllama_rs(
    model: Path, tok: Path, prompt: str, seed: int, t: float, p: float, n: int
) -> str:
    args = [str(_binary("zhllama-rs")), str(model), "-z", str(tok), "-i", prompt]
    args += ["-s", str(seed), "-t", str(t), "-p", str(p), "-n", str(n)]
    out = subprocess.run(args, capture_output=True, check=True).stdout.decode()
    assert out.endswith("\n")
    return out[:-1]


def prompt_echo(server: Server, prompt: str) -> str:
    """What zhllama-rs prints of the prompt itself: its tokens decoded."""
    ids = httpx.post(server.url + "/tokenize", json={"content": prompt}).json()["tokens"]
    return httpx.post(server.url + "/detokenize", json={"tokens": ids}).json()["content"]


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Starts servers (`serve(model, tok, *flags)`); each must have exited 0 by the end."""
    started: list[Server] = []

    def start(model: Path, tok: Path, *args: str, exe: Path | None = None) -> Server:
        started.append(Server(model, tok, *args, exe=exe))
        return started[-1]

    yield start
    for s in started:
        assert s.stop() == 0


@pytest.fixture
def binary() -> Callable[[str], Path]:
    return _binary


@pytest.fixture
def zhllama_rs() -> Callable[..., str]:
    """`zhllama_rs(model, tok, prompt, seed, temperature, top_p, steps)`: the CLI's output,
    prompt echo included, without the final newline."""
    return run_zhllama_rs


@pytest.fixture
def echo() -> Callable[[Server, str], str]:
    """What zhllama-rs prints of a prompt itself, asked of a running server."""
    return prompt_echo
