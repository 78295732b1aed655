#!/usr/bin/env python3
"""Run the zhllama-rs binary over mutated checkpoints and tokenizers and count what happens.

    python tools/fuzz_cli.py                       # 2000 runs or 180 s, whichever comes first
    python tools/fuzz_cli.py --runs 20000 --seconds 1200 --bin target/release/zhllama-rs

Starts from a small valid model and tokenizer (written by tools/gen_random_checkpoint.py, all
three versions), mutates one or both (bit flips, header fields set to edge values, cuts,
growth, bytes spliced from the other file), runs generate, chat or --tokenize on them with a
timeout, and counts: exit statuses, Rust panics (status 101 or "panicked" on stderr), deaths
by signal (SIGABRT, SIGSEGV, ...), hangs (past --timeout), and errors that are not one line.
Exits 1 if anything but a clean run or a one-line error was seen; the cases that were are kept
under --keep for reproducing.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGES = [0, -1, 1, 2, 3, 7, 255, 1 << 16, 1 << 20, (1 << 20) + 1, 2**31 - 1, -(2**31)]
SHAPE = (64, 172, 2, 8, 4, 512, 64)  # dim, hidden, layers, heads, kv heads, vocab, seq


def _generator():
    path = ROOT / "tools" / "gen_random_checkpoint.py"
    spec = importlib.util.spec_from_file_location("gen_random_checkpoint", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def mutate(data: bytes, other: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["flip", "field", "cut", "grow", "splice"])
        if kind == "flip" and b:
            at = rng.randrange(min(len(b), 4096) if rng.random() < 0.7 else len(b))
            b[at] ^= 1 << rng.randrange(8)
        elif kind == "field" and len(b) >= 40:
            at = 4 * rng.randrange(10)
            b[at : at + 4] = struct.pack("<i", rng.choice(EDGES))
        elif kind == "cut":
            del b[int(len(b) * rng.random()) :]
        elif kind == "grow":
            b += bytes([rng.randrange(256)]) * rng.randint(1, 4096)
        elif kind == "splice" and b and other:
            n = rng.randint(1, 256)
            src, dst = rng.randrange(len(other)), rng.randrange(len(b))
            piece = other[src : src + n]
            b[dst : dst + len(piece)] = piece[: len(b) - dst]
    return bytes(b)


def classify(proc: subprocess.CompletedProcess[bytes] | None) -> str:
    if proc is None:
        return "hang"
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode < 0:
        return f"signal {signal.Signals(-proc.returncode).name}"
    if proc.returncode == 101 or "panicked" in err:
        return "panic"
    if proc.returncode == 0:
        return "ok"
    lines = [line for line in err.splitlines() if line.strip()]
    if proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("zhllama-rs: "):
        return "error (one line)"
    return f"exit {proc.returncode}, stderr of {len(lines)} lines"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", type=Path, default=ROOT / "target" / "release" / "zhllama-rs")
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--timeout", type=float, default=20, help="a run longer than this is a hang")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, default=ROOT / "target" / "fuzz-cli")
    ap.add_argument("--json", type=Path, help="also write the counts here")
    a = ap.parse_args()
    if not a.bin.is_file():
        sys.exit(f"{a.bin}: no such binary (cargo build --release -p zhllama-cli)")
    gen, rng = _generator(), random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="zhllama-fuzz-"))
    seeds = {}
    for version in (0, 1, 2):
        p = work / f"v{version}.bin"
        gen.write_checkpoint(
            p, SHAPE, version, True, version + 1, group_size=4 if version == 2 else None
        )
        seeds[version] = p.read_bytes()
    gen.write_tokenizer(work / "tok.bin", SHAPE[5])
    tok0 = (work / "tok.bin").read_bytes()

    counts: collections.Counter[str] = collections.Counter()
    bad_cases = 0
    start = time.monotonic()
    runs = 0
    while runs < a.runs and time.monotonic() - start < a.seconds:
        runs += 1
        ckpt, tok = seeds[rng.randrange(3)], tok0
        target = rng.random()
        if target < 0.55:
            ckpt = mutate(ckpt, tok0, rng)
        elif target < 0.85:
            tok = mutate(tok, ckpt, rng)
        else:
            ckpt, tok = mutate(ckpt, tok0, rng), mutate(tok, ckpt, rng)
        (work / "c.bin").write_bytes(ckpt)
        (work / "t.bin").write_bytes(tok)
        mode = rng.choice(["generate", "generate", "chat", "tokenize"])
        args = [str(a.bin), str(work / "c.bin"), "-z", str(work / "t.bin"), "-n", "12"]
        args += {
            "generate": ["-i", "从前 ab", "-s", str(runs)],
            "chat": ["-m", "chat", "-y", "s", "-i", "hi", "-t", "0"],
            "tokenize": ["--tokenize", "-i", "从前 ab"],
        }[mode]
        try:
            proc = subprocess.run(
                args, capture_output=True, timeout=a.timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            proc = None
        kind = classify(proc)
        counts[kind] += 1
        if kind not in ("ok", "error (one line)"):
            bad_cases += 1
            keep = a.keep / f"case{runs}"
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(work / "c.bin", keep / "c.bin")
            shutil.copy(work / "t.bin", keep / "t.bin")
            (keep / "args.json").write_text(
                json.dumps({"mode": mode, "args": args[2:], "kind": kind})
            )
    elapsed = time.monotonic() - start
    shutil.rmtree(work, ignore_errors=True)

    print(f"{runs} runs in {elapsed:.0f} s ({a.bin})")
    for kind, n in counts.most_common():
        print(f"  {kind:32s} {n:6d}")
    summary = {k: counts[k] for k in ("panic", "hang")}
    summary["signals"] = sum(n for k, n in counts.items() if k.startswith("signal"))
    summary["other"] = sum(n for k, n in counts.items() if k.startswith("exit"))
    print(
        "panics {panic}, signals {signals}, hangs {hang}, not-one-line errors {other}".format(
            **summary
        )
    )
    if a.json:
        a.json.write_text(
            json.dumps({"runs": runs, "seconds": elapsed, "counts": counts}, indent=2)
        )
    if bad_cases:
        print(f"{bad_cases} bad case(s) kept under {a.keep}")
    return 1 if bad_cases else 0


if __name__ == "__main__":
    sys.exit(main())
