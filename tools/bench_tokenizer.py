"""Tokenizer encode speed: the Rust engine's encoder against sentencepiece, same text, one run.

Uses the seed's tok5000 (../shared/reference/zh: .model for sentencepiece, the legacy-format
.bin for the engine) on synthetic stories, checks that both give the same ids, and reports MB/s
of UTF-8 text and tokens/s for each, one thread.

Usage: python tools/bench_tokenizer.py OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT.parent / "shared" / "reference" / "zh"
STORIES = 5_000
REPEATS = 3


def best_seconds(fn) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(out: Path) -> int:
    if not (REF / "tok5000.model").exists():
        print(f"skipped: {REF} is absent (the seed's tok5000 is needed)")
        out.write_text(json.dumps({"skipped": "no reference tokenizer"}) + "\n")
        return 0
    import sentencepiece as spm
    import zhllama_rs
    from zhllama.registry import create

    source = create("sources", "synthetic", num_stories=STORIES)
    texts = list(source.stories())
    mb = sum(len(t.encode()) for t in texts) / 1e6

    sp = spm.SentencePieceProcessor(model_file=str(REF / "tok5000.model"))
    rs = zhllama_rs.Tokenizer(REF / "tok5000.bin", 5000)
    sp_ids = [sp.encode(t) for t in texts]
    rs_ids = [rs.encode(t, bos=False) for t in texts]
    assert sp_ids == rs_ids, "the engine's encoder disagrees with sentencepiece"
    tokens = sum(map(len, sp_ids))

    sp_s = best_seconds(lambda: [sp.encode(t) for t in texts])
    rs_s = best_seconds(lambda: [rs.encode(t, bos=False) for t in texts])
    result = {
        "stories": STORIES,
        "mb": mb,
        "tokens": tokens,
        "sentencepiece": {"mb_per_s": mb / sp_s, "tokens_per_s": tokens / sp_s},
        "zhllama_rs": {"mb_per_s": mb / rs_s, "tokens_per_s": tokens / rs_s},
        "rust_vs_sentencepiece": sp_s / rs_s,
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"tok5000 on {STORIES:,} synthetic stories ({mb:.1f} MB, {tokens:,} tokens), one thread;")
    print("both give the same ids (checked).\n")
    print("| encoder | MB/s | tokens/s |\n|---|---:|---:|")
    for name in ("sentencepiece", "zhllama_rs"):
        r = result[name]
        print(f"| {name} | {r['mb_per_s']:.1f} | {r['tokens_per_s'] / 1e6:.2f}M |")
    print(f"\nzhllama_rs / sentencepiece: {result['rust_vs_sentencepiece']:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
