"""`just demo`: the whole pipeline, offline, on the built-in synthetic corpus.

synthetic corpus → tokenizer → pretokenized shards → the `tiny` preset trained → exported to
llama2.c's format → a story from 从前 by the `zhllama-rs` binary → the same through
`import zhllama_rs`. Every stage runs through the same command a user would type, and every
artifact stays under `.demo/` (or the folder given as the first argument). Each finished step
leaves a `.done-*` marker there, so a second run reuses what is done and only generates again.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
STORIES = 20_000  # synthetic stories: enough for the tiny model to learn their shape
VOCAB = 2048  # the synthetic corpus has ~960 characters; the rest becomes merges


def step(title: str, marker: Path, cmd: list[str]) -> None:
    """Run `cmd` unless `marker` says an earlier demo run finished it."""
    if marker.exists():
        print(f"✓ {title} (already done)")
        return
    print(f"▶ {title}\n  $ {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        sys.exit(f"demo: step failed: {title}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".demo"
    out.mkdir(parents=True, exist_ok=True)
    zh = str(BIN / "zhllama")
    tok_dir, shards, run = out / "tokenizer", out / "shards", out / "run"
    tok_model, tok_bin = tok_dir / f"tok{VOCAB}.model", tok_dir / f"tok{VOCAB}.bin"
    corpus = [f"num_stories={STORIES}"]
    t_start = time.perf_counter()

    print("A synthetic story, as the corpus has them:")
    subprocess.run([zh, "data", "sample", "synthetic", "-n", "1"], cwd=ROOT, check=True)
    step(
        "train a sentencepiece tokenizer on the synthetic corpus",
        out / ".done-tokenizer",
        [zh, "tokenizer", "train", "synthetic", *corpus, "--vocab-size", str(VOCAB)]
        + ["-o", str(tok_dir)],
    )
    step(
        "pretokenize the corpus into shards (BOS … EOS per story)",
        out / ".done-shards",
        [zh, "data", "pretokenize", "synthetic", *corpus, "-z", str(tok_model), "-o", str(shards)],
    )
    step(
        "train the tiny preset on the shards",
        out / ".done-train",
        [zh, "train", "size=tiny", f"data_dir={shards}", f"out_dir={run}"],
    )
    model_bin = out / "model.bin"
    step(
        "export the best checkpoint to llama2.c's format",
        out / ".done-export",
        [zh, "export", str(run / "ckpt.pt"), "-o", str(model_bin), "--format", "llama2c"],
    )

    prompt = "从前"
    print(f"\n▶ a story from “{prompt}” by zhllama-rs (greedy):", flush=True)
    engine = ROOT / "target" / "release" / "zhllama-rs"
    cmd = [str(engine), str(model_bin), "-z", str(tok_bin), "-i", prompt, "-t", "0", "-n", "256"]
    print(f"  $ {shlex.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)

    print("\n▶ the same through the Python module:", flush=True)
    code = (
        "import zhllama_rs\n"
        f"model = zhllama_rs.Model({str(model_bin)!r}, tokenizer={str(tok_bin)!r})\n"
        f"print(model.generate({prompt!r}, steps=256, temperature=0.0))\n"
    )
    print("  " + code.replace("\n", "\n  ").rstrip())
    subprocess.run([str(BIN / "python"), "-c", code], check=True)

    print(f"\nartifacts (in {time.perf_counter() - t_start:.0f} s):")
    for name, path in [
        ("tokenizer", tok_model),
        ("tokenizer for zhllama-rs", tok_bin),
        ("shards", shards),
        ("training run (ckpt.pt, metrics.jsonl, loss.png)", run),
        ("model for zhllama-rs", model_bin),
    ]:
        print(f"  {name:<48} {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    main()
