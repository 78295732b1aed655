#!/usr/bin/env python3
"""Benchmark the Python API against the CLI: tokens/s of `zhllama_rs` (stream and generate) and
of the `zhllama-rs` binary on a random-weight model of the 15M shape, `-t 0 -n 200`, in one run.

    python tools/bench_python_api.py bench/python_api.json [--repeats 9] [--threads 0]

Target: the Python API within 3% of the CLI. The CLI's figure is its own `achieved tok/s` (run.c's
clock: from after the first position to the end). The Python figures use the same clock from
Python: `stream` from its first piece to its end, `generate` over the whole call minus one
`generate(steps=1)` (the first position). Each round runs the CLI, then stream, then generate,
back to back, so load from elsewhere on the machine hits all three alike; the ratios reported are
the median over rounds of each round's ratio (robust on a busy machine), with the best-of-rounds
figures beside them (other load only ever slows a run down). Writes JSON to the path given
first and prints a markdown table. Builds what it needs: `cargo build --release -p zhllama-cli`
and the random checkpoint (tools/gen_random_checkpoint.py, cached in target/bench/, the same
file tools/bench_engine.py uses). The zhllama_rs module is the venv's (release profile).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zhllama_rs

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "target" / "bench"
TOK5000 = ROOT.parent / "shared" / "reference" / "zh" / "tok5000.bin"
GEN = ROOT / "tools" / "gen_random_checkpoint.py"
SHAPE_15M = (288, 768, 6, 6, 6, 5000, 256)
STEPS = 200


def v0_size(shape: tuple[int, ...]) -> int:
    d, h, n_layers, n_heads, n_kv, vocab, seq_len = shape
    kvd = n_kv * d // n_heads
    per_layer = 2 * d + 2 * d * d + 2 * kvd * d + 3 * d * h
    return 28 + 4 * (vocab * d + n_layers * per_layer + d + seq_len * (d // n_heads))


def ensure_files() -> tuple[Path, Path]:
    BENCH.mkdir(parents=True, exist_ok=True)
    model = BENCH / "15M.bin"
    if not model.exists() or model.stat().st_size != v0_size(SHAPE_15M):
        subprocess.run([sys.executable, str(GEN), "--shape", "15M", "-o", str(model)], check=True)
    if TOK5000.exists():
        return model, TOK5000
    tok = BENCH / "tok5000-random.bin"
    if not tok.exists():
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, str(GEN), "--shape", "15M", "-o", str(Path(tmp) / "x.bin")]
            subprocess.run([*cmd, "--tokenizer-out", str(tok)], check=True)
    return model, tok


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cli_run(engine: Path, model: Path, tok: Path, threads: int) -> tuple[float, str, float]:
    """(achieved tok/s, stdout, CPU seconds of the whole process)."""
    cmd = [str(engine), str(model), "-z", str(tok), "-t", "0", "-n", str(STEPS)]
    cmd += ["--threads", str(threads), "--no-eos-stop"]
    cpu = children_cpu()
    r = subprocess.run(cmd, capture_output=True, check=True)
    cpu = children_cpu() - cpu
    m = re.search(rb"achieved tok/s: ([\d.]+)", r.stderr)
    if not m:
        raise RuntimeError(f"no tok/s in: {r.stderr!r}")
    return float(m.group(1)), r.stdout.decode(), cpu


def stream_run(model: zhllama_rs.Model) -> tuple[float, str]:
    s = model.stream(steps=STEPS, temperature=0.0, stop_at_eos=False)
    pieces = [next(s)]
    t0 = time.perf_counter()  # run.c's clock: after the first position
    pieces.extend(s)
    seconds = time.perf_counter() - t0
    return (s.positions - 1) / seconds, "".join(pieces)


def generate_run(model: zhllama_rs.Model) -> tuple[float, float]:
    """(tok/s, CPU seconds of the whole generate call)."""
    t0 = time.perf_counter()
    model.generate(steps=1, temperature=0.0)
    first = time.perf_counter() - t0
    t0, cpu = time.perf_counter(), time.process_time()
    model.generate(steps=STEPS, temperature=0.0, stop_at_eos=False)
    cpu = time.process_time() - cpu
    seconds = time.perf_counter() - t0 - first
    return (STEPS - 1) / seconds, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="benchmark the zhllama_rs Python API vs the CLI")
    ap.add_argument("out", type=Path, help="where to write the JSON figures")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0, help="0 = physical cores (both sides)")
    a = ap.parse_args(argv)

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "zhllama-cli"], cwd=ROOT, check=True)
    engine = ROOT / "target" / "release" / "zhllama-rs"
    model_path, tok = ensure_files()
    model = zhllama_rs.Model(model_path, tok, threads=a.threads)
    cli_run(engine, model_path, tok, a.threads)  # warm the page cache
    stream_run(model)

    cli, stream, generate, cli_cpu, generate_cpu = [], [], [], [], []
    same_text = True
    for _ in range(a.repeats):
        rate, cli_text, cpu = cli_run(engine, model_path, tok, a.threads)
        cli.append(rate)
        cli_cpu.append(cpu)
        rate, text = stream_run(model)
        stream.append(rate)
        same_text &= cli_text == text + "\n"
        rate, cpu = generate_run(model)
        generate.append(rate)
        generate_cpu.append(cpu)

    best = {"cli": max(cli), "stream": max(stream), "generate": max(generate)}
    paired = {
        "stream": statistics.median(p / c for p, c in zip(stream, cli, strict=True)),
        "generate": statistics.median(p / c for p, c in zip(generate, cli, strict=True)),
    }
    doc = {
        "shape": "15M (288/768/6/6/6/5000/256), random weights",
        "args": f"-t 0 -n {STEPS} --no-eos-stop",
        "threads": model.threads,
        "tokenizer": str(tok),
        "python": sys.version.split()[0],
        "zhllama_rs": zhllama_rs.__version__,
        "runs_tok_per_s": {
            "cli": [round(r, 1) for r in cli],
            "stream": [round(r, 1) for r in stream],
            "generate": [round(r, 1) for r in generate],
        },
        "best_tok_per_s": {k: round(v, 1) for k, v in best.items()},
        "ratio_stream_vs_cli": round(paired["stream"], 4),
        "ratio_generate_vs_cli": round(paired["generate"], 4),
        "ratio_of_best_stream_vs_cli": round(best["stream"] / best["cli"], 4),
        "ratio_of_best_generate_vs_cli": round(best["generate"] / best["cli"], 4),
        # CPU time is far less sensitive to other load than wall time. The CLI's includes its
        # start-up and loading, so this ratio slightly flatters the Python API.
        "cpu_s_per_run": {
            "cli": [round(c, 4) for c in cli_cpu],
            "generate": [round(c, 4) for c in generate_cpu],
        },
        "ratio_cpu_cli_vs_generate": round(min(cli_cpu) / min(generate_cpu), 4),
        "target": "ratios >= 0.97",
        "same_text": same_text,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, a.out)

    print(f"| 15M, -t 0 -n {STEPS}, {model.threads} threads | best tok/s | vs CLI (median) |")
    print("|---|---|---|")
    print(f"| zhllama-rs (CLI) | {best['cli']:.1f} | 1.000 |")
    print(f"| Model.stream | {best['stream']:.1f} | {paired['stream']:.3f} |")
    print(f"| Model.generate | {best['generate']:.1f} | {paired['generate']:.3f} |")
    print(
        f"CPU s per run (best): CLI {min(cli_cpu):.3f} (whole process), "
        f"generate {min(generate_cpu):.3f}: ratio {doc['ratio_cpu_cli_vs_generate']:.3f}"
    )
    if not same_text:
        print("warning: the Python API's text differs from the CLI's", file=sys.stderr)
    return 0 if same_text else 1


if __name__ == "__main__":
    raise SystemExit(main())
