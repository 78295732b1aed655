"""Model.generate against the native zhllama-rs binary, and the wheel's zhllama-rs command
against the binary: same stdout, stderr and exit status."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest
import zhllama_rs

# Keyword arguments of Model.generate; the same values go to the CLI as flags. Run on random
# models (tools/gen_random_checkpoint.py): parity needs no trained weights.
CASES = [
    dict(prompt="Once upon a time", steps=256, temperature=0.0),
    dict(prompt=None, steps=100, temperature=1.0, top_p=0.9, seed=42),
    dict(prompt="Lily", steps=200, temperature=0.8, top_p=0.0, seed=7),
    dict(prompt="The dog", steps=0, temperature=1.0, top_p=1.0, seed=123, stop_at_eos=False),
    dict(prompt="Tom and", steps=-5, temperature=0.5, seed=-3),  # negative: context / wraps
    dict(prompt="A cat", steps=80, temperature=-1.0, top_p=1.5, seed=11),  # greedy, p -> 0.9
    dict(prompt="  Once   upon  a   time there was a girl ", steps=4, temperature=0.0),
    dict(prompt='She said, "hi"\nand left.', steps=120, temperature=0.9, top_p=0.95, seed=1),
    dict(prompt="从前", steps=60, temperature=0.0),
    dict(prompt="从前有一座山", steps=80, temperature=1.0, top_p=0.9, seed=2024),
    dict(prompt=None, steps=0, temperature=1.2, top_p=0.0, seed=5, stop_at_eos=False),
]


def generate_kwargs(case: dict) -> dict:
    kw = dict(case)
    kw["prompt"] = kw["prompt"] or ""
    return kw


def check_parity(native: Path, files, h, case: dict) -> None:
    model = zhllama_rs.Model(files.model, files.tokenizer, threads=1)
    r = subprocess.run(
        [str(native), *h.cli_args(files, **case), "--threads", "1"], capture_output=True
    )
    assert r.returncode == 0, r.stderr
    text = model.generate(**generate_kwargs(case))
    # The documented relation: the CLI prints the story, then one newline.
    assert r.stdout.decode() == text + "\n"
    assert "".join(model.stream(**generate_kwargs(case))) == text


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_generate_matches_cli(native_cli, tiny, tiny_v1, h, case) -> None:
    check_parity(native_cli, tiny, h, case)
    # v1, separate classifier: the tiny tokenizer fits it too (same vocab size)
    check_parity(native_cli, type(tiny)(tiny_v1.model, tiny.tokenizer), h, case)


def cli_cases(files) -> list[tuple[list[str], bytes | None]]:
    """(arguments, stdin) pairs covering success, usage, errors and the other modes."""
    m, z = str(files.model), str(files.tokenizer)
    return [
        ([m, "-z", z, "-i", "Once upon a time", "-n", "60", "-t", "0"], None),
        ([m, "-z", z, "-n", "50", "-s", "9", "--threads", "1"], None),
        (["--help"], None),
        (["--version"], None),
        ([], None),  # no checkpoint: exit 1
        ([m, "-z", z, "--bogus"], None),  # usage error: exit 2
        ([m, "-z", z, "-n", "many"], None),
        ([m, "-z", m], None),  # the checkpoint given as tokenizer
        ([m + ".missing", "-z", z], None),
        ([m], None),  # default tokenizer.bin is absent
        (["--tokenize", "-z", z], b"Once upon a time\0Lily and Ben\0"),
        ([m, "-z", z, "-m", "chat", "-n", "80", "-t", "0", "-y", "be kind"], b"hello\n"),
    ]


def test_python_command_matches_native(native_cli, tiny, h, tmp_path) -> None:
    for args, stdin in cli_cases(tiny):
        native = subprocess.run(
            [str(native_cli), *args], input=stdin, capture_output=True, cwd=tmp_path
        )
        wheel = subprocess.run(
            [*h.python_cli(), *args], input=stdin, capture_output=True, cwd=tmp_path
        )
        assert (wheel.returncode, wheel.stdout) == (native.returncode, native.stdout), args
        assert h.mask_rate(wheel.stderr) == h.mask_rate(native.stderr), args
        assert b"panicked" not in wheel.stderr and b"Traceback" not in wheel.stderr


def test_console_script_is_installed(native_cli, tiny, tmp_path) -> None:
    eps = {ep.name: ep.value for ep in distribution("zhllama-rs").entry_points}
    assert eps["zhllama-rs"] == "zhllama_rs.__main__:main"
    assert eps["rust"] == "zhllama_rs.components:RUST"
    script = Path(sys.executable).parent / "zhllama-rs"
    if not script.exists():
        script = Path(shutil.which("zhllama-rs") or "zhllama-rs")
    args = [str(tiny.model), "-z", str(tiny.tokenizer), "-n", "40", "-t", "0"]
    out = subprocess.run([str(script), *args], capture_output=True, cwd=tmp_path)
    want = subprocess.run([str(native_cli), *args], capture_output=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout == want.stdout
    assert out.stderr.startswith(b"achieved tok/s: ")
