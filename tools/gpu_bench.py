"""Training tokens/s and MFU per preset on one CUDA GPU (bf16 autocast, torch.compile, fused
AdamW), on random tokens so it needs no data.

    python tools/gpu_bench.py [--presets 15M,42M,110M] [--steps 30] [--batch-size N]
                              [--no-compile] [--json OUT]

Each optimizer step here is one micro-batch of the preset's batch size (gradient accumulation
does not change throughput). MFU = 6·N + attention FLOPs per token × tokens/s / peak bf16 FLOP/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from zhllama_trainer.config import make_config
from zhllama_trainer.model import ModelArgs, Transformer, flops_per_token
from zhllama_trainer.runtime import PEAK_FLOPS
from zhllama_trainer.train import make_optimizer


def bench(preset: str, steps: int, batch: int | None, compile_: bool, peak: float | None) -> dict:
    c = make_config(preset, {"vocab_size": 5000, "device": "cuda"})
    b = batch or c.batch_size
    args = ModelArgs(dim=c.dim, n_layers=c.n_layers, n_heads=c.n_heads, n_kv_heads=c.n_kv_heads,
                     vocab_size=5000, max_seq_len=c.max_seq_len)  # fmt: skip
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = Transformer(args).to(dev)
    opt = make_optimizer(model, c, "cuda")
    fwd = torch.compile(model) if compile_ else model
    T = c.max_seq_len
    data = torch.randint(0, 5000, (4, b, T + 1), device=dev)

    def step(i: int) -> torch.Tensor:
        x = data[i % 4]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = fwd(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.perf_counter()
    for i in range(3):  # compile and warm up
        step(i)
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tok_s = b * T * steps / dt
    n = model.num_params()
    mfu = flops_per_token(args, T, n) * tok_s / peak if peak else None
    return {
        "preset": preset,
        "params_m": round(n / 1e6, 2),
        "batch": b,
        "seq_len": T,
        "tokens_per_s": round(tok_s),
        "mfu": round(mfu, 4) if mfu is not None else None,
        "step_ms": round(1000 * dt / steps, 1),
        "warmup_s": round(warm, 1),
        "loss": round(loss.item(), 4),
        "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="15M,42M,110M")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--peak-flops", type=float, default=None, help="default: by GPU name")
    ap.add_argument("--json", type=Path, default=None)
    opts = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: this benchmark needs one", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name()
    peak = opts.peak_flops or next((v for k, v in PEAK_FLOPS.items() if k in name), None)
    print(f"{name}, torch {torch.__version__}, peak bf16 {peak or 0:.3g} FLOP/s")
    print("| preset | params | batch × seq | tokens/s | MFU | step ms | warm-up s | mem GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for p in opts.presets.split(","):
        r = bench(p.strip(), opts.steps, opts.batch_size, not opts.no_compile, peak)
        rows.append(r)
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        print(f"| {p} | {r['params_m']}M | {r['batch']} × {r['seq_len']} | "
              f"{r['tokens_per_s']:,} | {mfu} | {r['step_ms']} | {r['warmup_s']} | "
              f"{r['max_mem_gib']} |", flush=True)  # fmt: skip
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if opts.json:
        opts.json.write_text(json.dumps({"gpu": name, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
