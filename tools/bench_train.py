"""CPU training throughput of the tiny and 15M shapes, fp32 eager against the other settings.

    python tools/bench_train.py OUTPUT_JSON [--steps N] [--compile]

Each setting trains the same model from the same initial weights on the same batches (random
tokens; a fixed set of 4 batches repeated, so the loss falls and the curves can be compared).
"fp32 eager" is the original's setting (torch's SDPA attention); the others add bf16 autocast,
fused AdamW and, on shapes with small heads, zhllama's CPU attention kernel.
Settings run interleaved, round by round, and each keeps its best round, so a busy machine
hurts them alike. Figures: tokens/s per setting, the ratio of the best to fp32 eager, the ratio
to the original llama2.c train.py's measured speed on this machine type, and the final losses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from pathlib import Path

# isort: off
import zhllama_trainer  # noqa: F401  (before torch: it tunes torch's OpenMP, see its __init__)
import torch
from zhllama_trainer.cpu_attention import MAX_HEAD_DIM
from zhllama_trainer.model import ModelArgs, Transformer
from zhllama_trainer.runtime import cpu_has_bf16
# isort: on

# The original train.py (fp32 eager) on this 2-core machine type, tokens/s (issue 6).
ORIGINAL = {"tiny": 12_100, "15M": 3_100}
SHAPES = {
    "tiny": (ModelArgs(dim=64, n_layers=5, n_heads=8, n_kv_heads=4, vocab_size=5000), 16),
    "15M": (ModelArgs(dim=288, n_layers=6, n_heads=6, n_kv_heads=6, vocab_size=5000), 8),
}
SEQ = 256


def settings(with_compile: bool, small_heads: bool) -> dict[str, dict]:
    """The original's setting first (fp32, torch's SDPA attention), then ours."""
    fp32, bf16 = torch.float32, torch.bfloat16
    out = {
        "fp32 eager": {"dtype": fp32, "fused": False},
        "fp32 fused AdamW": {"dtype": fp32, "fused": True},
    }
    if cpu_has_bf16():
        out["bf16 autocast"] = {"dtype": bf16, "fused": False}
        out["bf16 autocast, fused AdamW"] = {"dtype": bf16, "fused": True}
    if small_heads:  # heads small enough for zhllama's attention kernel (cpu_attention.py)
        out["fp32, zhllama attention"] = {"dtype": fp32, "fused": False, "attention": "auto"}
        if cpu_has_bf16():
            out["bf16 autocast, zhllama attention"] = {
                "dtype": bf16,
                "fused": False,
                "attention": "auto",
            }
    if with_compile:
        out["fp32 compile, fused AdamW"] = {"dtype": fp32, "fused": True, "compile": True}
    return out


class Run:
    def __init__(self, args: ModelArgs, batch: int, cfg: dict, init: dict) -> None:
        self.model = Transformer(args)
        self.model.load_state_dict(init)
        self.model.set_attention_kernel(cfg.get("attention", "sdpa"))
        self.fwd = torch.compile(self.model) if cfg.get("compile") else self.model
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, fused=cfg["fused"])
        self.dtype = cfg["dtype"]
        gen = torch.Generator().manual_seed(0)
        self.batches = [
            torch.randint(0, args.vocab_size, (batch, SEQ + 1), generator=gen) for _ in range(4)
        ]
        self.i = 0
        self.loss = float("nan")

    def step(self) -> None:
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        ctx = (
            torch.autocast("cpu", dtype=self.dtype)
            if self.dtype != torch.float32
            else contextlib.nullcontext()
        )
        with ctx:
            _, loss = self.fwd(b[:, :-1], b[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.loss = loss.item()


def bench_shape(name: str, steps: int, rounds: int, with_compile: bool) -> dict:
    args, batch = SHAPES[name]
    torch.manual_seed(0)
    init = Transformer(args).state_dict()
    small = args.head_dim <= MAX_HEAD_DIM
    runs = {k: Run(args, batch, cfg, init) for k, cfg in settings(with_compile, small).items()}
    for r in runs.values():  # warm up (and compile)
        r.step()
    speed = {k: 0.0 for k in runs}
    for _ in range(rounds):
        for k, r in runs.items():
            t = time.perf_counter()
            for _ in range(steps):
                r.step()
            speed[k] = max(speed[k], batch * SEQ * steps / (time.perf_counter() - t))
    best = max(speed, key=speed.get)
    return {
        "batch": batch,
        "seq_len": SEQ,
        "tokens_per_s": {k: round(v) for k, v in speed.items()},
        "final_loss": {k: round(r.loss, 4) for k, r in runs.items()},
        "best": best,
        "best_vs_fp32_eager": round(speed[best] / speed["fp32 eager"], 3),
        "best_vs_original": round(speed[best] / ORIGINAL[name], 3),
        "original_tokens_per_s": ORIGINAL[name],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (slow)")
    opts = ap.parse_args()
    results = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "bf16_instructions": cpu_has_bf16(),
            "torch": torch.__version__,
        },
        "shapes": {
            n: bench_shape(n, opts.steps, opts.rounds, opts.compile) for n in ("tiny", "15M")
        },
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("| shape | setting | tokens/s | final loss |\n|---|---|---:|---:|")
    for n, r in results["shapes"].items():
        for k, v in r["tokens_per_s"].items():
            print(f"| {n} | {k} | {v:,} | {r['final_loss'][k]:.4f} |")
    for n, r in results["shapes"].items():
        print(
            f"\n{n}: best = {r['best']}, {r['best_vs_fp32_eager']:.2f}x fp32 eager, "
            f"{r['best_vs_original']:.2f}x the original train.py ({r['original_tokens_per_s']:,})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
