"""Faults found by fuzzing (issue 15), through the extension: a header whose context does not
fit in memory is a MemoryError and the interpreter lives on; devices and FIFOs are refused
without being read; an int too big for its argument is a ValueError like every other bad
value; file names with a newline keep errors on one line; the wheel's `zhllama-rs` command
fails cleanly on a full stdout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import zhllama_rs

# A process that should end at once and does not within this long is a hang; the bound decides
# only between "ends" and "never ends".
HANG_S = 120

# dim 256 (kv dim 256), 2 layers, vocab 512, a context of 2^20 positions: the whole KV cache
# would take 4·(2·2·2^20·256 + 4·2^20) bytes ≈ 4.3 GB, while the file is about 2 MB.
HUGE_CONTEXT = (256, 64, 2, 4, 4, 512, 1 << 20)


def _run_python(code: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=HANG_S,
        preexec_fn=limit if limit_bytes else None,
    )


def test_a_huge_context_is_a_memory_error_and_the_interpreter_lives(gen, tmp_path: Path) -> None:
    model, tok = tmp_path / "huge.bin", tmp_path / "tok.bin"
    gen.write_checkpoint(model, HUGE_CONTEXT, 1, True, 3)
    gen.write_tokenizer(tok, 512)
    # Before: the cache was allocated at load; under this limit that aborted the interpreter.
    out = _run_python(
        f"""
        import zhllama_rs
        m = zhllama_rs.Model({str(model)!r}, tokenizer={str(tok)!r}, threads=1)
        print("short story", len(m.generate(steps=8, temperature=0.0)) >= 0)
        for what, call in [
            ("generate", lambda: m.generate(steps=0, temperature=0.0)),
            ("stream", lambda: m.stream(steps=0)),
            ("forward", lambda: m.forward(0, 1_000_000)),
        ]:
            try:
                call()
                print(what, "no error")
            except MemoryError as e:
                print(what, "MemoryError:", e)
        print("alive", len(m.generate(steps=16, temperature=0.0)) >= 0)
        """,
        limit_bytes=3 << 30,
    )
    assert out.returncode == 0, (out.returncode, out.stderr)
    lines = out.stdout.splitlines()
    assert lines[0] == "short story True"
    for line, what in zip(lines[1:4], ("generate", "stream", "forward"), strict=True):
        assert line.startswith(f"{what} MemoryError: cannot allocate "), lines
        assert "for the KV cache of" in line
    assert lines[1].endswith("bytes (4112 MiB) for the KV cache of 1048576 positions"), lines
    assert lines[4] == "alive True"


def test_devices_and_fifos_are_refused(tiny, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    # in a child process: before the fix a FIFO blocked in open() and /dev/urandom never ended
    out = _run_python(
        f"""
        import zhllama_rs
        cases = [
            ("ckpt /dev/zero", lambda: zhllama_rs.Model("/dev/zero")),
            ("ckpt fifo", lambda: zhllama_rs.Model({str(fifo)!r})),
            ("tok /dev/zero", lambda: zhllama_rs.Model({str(tiny.model)!r}, tokenizer="/dev/zero")),
            ("tok /dev/urandom", lambda: zhllama_rs.Tokenizer("/dev/urandom")),
            ("tok fifo", lambda: zhllama_rs.Tokenizer({str(fifo)!r})),
        ]
        for what, call in cases:
            try:
                call()
                print(what, "| loaded")
            except ValueError as e:
                print(what, "|", e)
        """
    )
    assert out.returncode == 0, out.stderr
    got = dict(line.split(" | ", 1) for line in out.stdout.splitlines())
    assert got["ckpt /dev/zero"] == "/dev/zero: is a character device, not a checkpoint file"
    assert got["ckpt fifo"] == f"{fifo}: is a named pipe (FIFO), not a checkpoint file"
    assert got["tok /dev/zero"] == "/dev/zero: is a character device, not a tokenizer file"
    assert got["tok /dev/urandom"] == "/dev/urandom: is a character device, not a tokenizer file"
    assert got["tok fifo"] == f"{fifo}: is a named pipe (FIFO), not a tokenizer file"


HUGE = 10**30


@pytest.mark.parametrize(
    "call",
    [
        lambda f: zhllama_rs.Model(f.model, tokenizer=f.tokenizer, threads=HUGE),
        lambda f: zhllama_rs.Model(f.model, quantize="q8", group_size=HUGE),
        lambda f: zhllama_rs.Model(f.model, tokenizer=f.tokenizer).generate(steps=HUGE),
        lambda f: zhllama_rs.Model(f.model, tokenizer=f.tokenizer).generate(seed=10**40),
        lambda f: zhllama_rs.Model(f.model, tokenizer=f.tokenizer).stream(steps=-HUGE),
        lambda f: zhllama_rs.Model(f.model).forward(HUGE, 0),
        lambda f: zhllama_rs.Model(f.model).forward(0, 10**5000),
        lambda f: zhllama_rs.Tokenizer(f.tokenizer, vocab_size=HUGE),
        lambda f: zhllama_rs.Tokenizer(f.tokenizer).decode([1, HUGE]),
    ],
    ids=["threads", "group_size", "steps", "seed", "negative", "token", "pos", "vocab", "decode"],
)
def test_an_int_too_big_is_a_value_error(tiny, call) -> None:
    # Before: OverflowError, which is not in the documented table of exceptions.
    with pytest.raises(ValueError, match="out of range") as e:
        call(tiny)
    assert not isinstance(e.value, OverflowError)


def test_an_int_too_big_for_the_attention_op_is_a_value_error() -> None:
    import numpy as np
    from zhllama_rs import ops

    q = np.zeros((1, 1, 4, 8), np.float32)
    out, lse = np.zeros_like(q), np.zeros((1, 1, 4), np.float32)
    with pytest.raises(ValueError, match="out of range"):
        ops.causal_attention_forward_f32(q, q, q, out, lse, threads=HUGE)


def test_a_name_with_a_newline_stays_on_one_line(tiny, tmp_path: Path) -> None:
    odd = tmp_path / "bad\nname.bin"
    odd.write_bytes(b"tiny")
    with pytest.raises(ValueError) as e:
        zhllama_rs.Model(odd)
    assert "\n" not in str(e.value)
    assert str(e.value).startswith(f'"{tmp_path}/bad\\nname.bin": file is 4 bytes')
    with pytest.raises(ValueError) as e:
        zhllama_rs.Model(tiny.model, tokenizer=odd)
    assert "\n" not in str(e.value) and "bad\\nname.bin" in str(e.value)


@pytest.mark.parametrize("mode", [["-i", "hi"], ["-m", "chat", "-y", "s", "-i", "hi"]])
def test_the_wheels_command_on_a_full_stdout(tiny, h, mode: list[str]) -> None:
    args = h.python_cli() + h.cli_args(tiny, steps=20, temperature=0.0) + mode
    with open("/dev/full", "wb") as full:
        out = subprocess.run(
            args, stdin=subprocess.DEVNULL, stdout=full, stderr=subprocess.PIPE, timeout=HANG_S
        )
    err = out.stderr.decode()
    # Before (chat): a Rust panic, 'failed printing to stdout'.
    assert out.returncode == 1, err
    assert err.splitlines() == [
        "zhllama-rs: cannot write to stdout: No space left on device (os error 28)"
    ]
