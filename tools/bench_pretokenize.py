"""Pretokenize throughput for 1 and 2 processes, and sentencepiece encode speed.

Usage: python tools/bench_pretokenize.py OUTPUT_JSON [--stories N]

Trains a tokenizer on the synthetic corpus, then pretokenizes N synthetic stories with one
encoding process (in the parent) and with two worker processes, and times both from start to
finished manifest (worker start-up included). The synthetic source is random-access, so each
worker generates its own stories: the figures cover generating the text as well as encoding it.
Writes the figures to OUTPUT_JSON and prints a markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from zhllama.registry import get_registry
from zhllama_data.pretokenize import PretokenizeOptions, pretokenize
from zhllama_tokenizer.train import TrainOptions, train_tokenizer


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def encode_speed(model: Path, texts: list[str]) -> dict[str, float]:
    tok = get_registry().create("tokenizers", "sentencepiece", model=model)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t0 = time.perf_counter()
    ids = tok.encode_batch(texts)
    batch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in texts:
        tok.encode(t)
    loop_s = time.perf_counter() - t0
    n = sum(map(len, ids))
    return {
        "batch_mb_per_s": mb / batch_s,
        "batch_tokens_per_s": n / batch_s,
        "loop_mb_per_s": mb / loop_s,
        "loop_tokens_per_s": n / loop_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--stories", type=int, default=120_000)
    parser.add_argument("--vocab-size", type=int, default=4000)
    args = parser.parse_args()
    quiet = Console(file=io.StringIO())
    registry = get_registry()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        source = registry.create("sources", "synthetic", num_stories=20_000)
        t0 = time.perf_counter()
        trained = train_tokenizer(
            source, tmp_path / "tok", TrainOptions(args.vocab_size, heldout_stories=200), quiet
        )
        train_s = time.perf_counter() - t0
        sample = list(registry.create("sources", "synthetic", num_stories=10_000).stories())
        t0 = time.perf_counter()
        list(registry.create("sources", "synthetic", num_stories=10_000).stories())
        gen_mb_s = sum(len(t.encode()) for t in sample) / 1e6 / (time.perf_counter() - t0)
        enc = encode_speed(trained.model, sample)
        runs = {}
        for workers in (1, 2):
            opts = PretokenizeOptions(
                workers=workers,
                chunk_stories=2048,
                source_settings={"num_stories": str(args.stories)},
            )
            cpu0 = _cpu_seconds()
            t0 = time.perf_counter()
            manifest = pretokenize(
                "synthetic", trained.model, tmp_path / f"shards{workers}", opts, quiet
            )
            seconds = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu0
            run = manifest["_run"]
            runs[workers] = {
                "seconds": seconds,
                "mb_per_s": run["bytes"] / 1e6 / seconds,
                "tokens_per_s": run["tokens"] / seconds,
                "stories_per_s": run["stories"] / seconds,
                "text_mb": run["bytes"] / 1e6,
                "tokens": run["tokens"],
                "cpu_seconds": cpu,  # parent and (finished) workers together
            }
    speedup = runs[2]["mb_per_s"] / runs[1]["mb_per_s"]
    # CPU work per run: ~1.0 means two processes do no more work than one, so on two idle
    # cores they finish in half the time; the wall-clock ratio also depends on other load
    cpu_ratio = runs[1]["cpu_seconds"] / runs[2]["cpu_seconds"]
    result = {
        "stories": args.stories,
        "vocab_size": args.vocab_size,
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "tokenizer_train_seconds": train_s,
        "synthetic_generate_mb_per_s": gen_mb_s,
        "encode": enc,
        "pretokenize": {"1": runs[1], "2": runs[2]},
        "speedup_2_vs_1": speedup,
        "cpu_work_ratio_1_vs_2": cpu_ratio,
        "ideal_speedup_2_vs_1": 2 * cpu_ratio,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| pretokenize ({args.stories:,} synthetic stories) | MB text/s | tokens/s | s |")
    print("|---|---:|---:|---:|")
    for w, r in runs.items():
        print(
            f"| {w} process{'es' if w > 1 else ''} | {r['mb_per_s']:.1f} | "
            f"{r['tokens_per_s'] / 1e6:.2f}M | {r['seconds']:.1f} |"
        )
    print(f"| speed-up, 2 vs 1 (wall clock) | {speedup:.2f}× | | |")
    print(f"| speed-up, 2 vs 1 on idle cores (CPU work) | {2 * cpu_ratio:.2f}× | | |")
    print(
        f"\nsentencepiece encode (Python, 1 thread): {enc['batch_mb_per_s']:.1f} MB/s "
        f"({enc['batch_tokens_per_s'] / 1e6:.2f}M tokens/s) on a list, "
        f"{enc['loop_mb_per_s']:.1f} MB/s one story at a time; synthetic stories are "
        f"generated at {gen_mb_s:.1f} MB/s; load average {result['load_average_1m']:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
