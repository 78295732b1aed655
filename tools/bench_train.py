"""CPU training throughput: zhllama's trainer against llama2.c's own train.py step, in one run.

    python tools/bench_train.py OUTPUT_JSON [--steps N] [--rounds N] [--shapes tiny,15M,42M]

Settings, each training the same model from the same initial weights on the same batches
(random tokens; a fixed set of 4 batches repeated, so the loss falls and the losses can be
compared):

- "zhllama": what `zhllama train` does on this CPU: its Transformer (fused, chunked classifier
  and loss), dtype=auto (bf16 autocast where the CPU has bf16 instructions), attention=auto
  (zhllama's Rust kernel for heads of up to 8 values), its AdamW (not fused on CPU), clip 1.0.
- "zhllama, float32": the same in float32, so that bf16's share of the difference shows.
- "llama2.c": the baseline, when `ZH_REF_LLAMA2C=DIR` points at a llama2.c checkout: its own
  `model.py`, imported from DIR into this process, stepped as its train.py does on a CPU: float32
  (train.py uses a nullcontext, not autocast, on CPU), `configure_optimizers` (plain AdamW, weight
  decay on matrices), the full-logits loss in `last_loss`, grad clip 1.0, `zero_grad(set_to_none)`.

Both use the same optimizer settings (lr 5e-4, betas 0.9/0.95, weight decay 0.1: the seed's)
and the same torch, threads and OpenMP settings (one process; `zhllama train`'s OpenMP tuning,
set before torch loads, holds for both). Settings run interleaved, round by round, and each
keeps its best round, so a busy machine hurts them alike. Figures: tokens/s per setting, each
setting's ratio to llama2.c (when configured) and the final losses (in float32 they must agree
with llama2.c's to float rounding: the same model, the same data: the baseline is the right one).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

# isort: off
from zhllama_trainer.openmp import tune_for_cpu_training

tune_for_cpu_training()  # before torch loads, as `zhllama train` does (see openmp.py)
import torch  # noqa: E402
from zhllama_trainer.config import TrainConfig  # noqa: E402
from zhllama_trainer.model import ModelArgs, Transformer  # noqa: E402
from zhllama_trainer.runtime import Runtime, cpu_has_bf16, resolve_dtype  # noqa: E402
from zhllama_trainer.train import make_optimizer  # noqa: E402

# isort: on

import benchrefs  # noqa: E402

SHAPES = {  # name: (model shape, batch, sequence length); the presets' shapes
    "tiny": (ModelArgs(dim=64, n_layers=5, n_heads=8, n_kv_heads=4, vocab_size=5000), 16, 256),
    "15M": (ModelArgs(dim=288, n_layers=6, n_heads=6, n_kv_heads=6, vocab_size=5000), 8, 256),
    "42M": (
        ModelArgs(dim=512, n_layers=8, n_heads=8, n_kv_heads=8, vocab_size=5000, max_seq_len=1024),
        2,
        1024,
    ),
}
CPU = torch.device("cpu")
OPTIMIZER = TrainConfig()  # lr, betas, weight decay and grad clip: the trainer's defaults
BASELINE = "llama2.c"


def load_llama2c(folder: Path) -> ModuleType:
    """llama2.c's model.py, imported under its own name so it cannot shadow anything."""
    spec = importlib.util.spec_from_file_location("llama2c_model", folder / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Batch = tuple[torch.Tensor, torch.Tensor]


def batches(args: ModelArgs, batch: int, seq: int) -> list[Batch]:
    """Inputs and targets, contiguous as train.py's loader makes them (its loss uses .view)."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(4):
        b = torch.randint(0, args.vocab_size, (batch, seq + 1), generator=gen)
        out.append((b[:, :-1].contiguous(), b[:, 1:].contiguous()))
    return out


class Ours:
    """One training step as zhllama_trainer.train._train runs it on a CPU."""

    def __init__(self, args: ModelArgs, init: dict, data: list[Batch], dtype: str):
        self.model = Transformer(args)
        self.model.load_state_dict(init)
        self.model.set_attention_kernel("auto")
        self.opt = make_optimizer(self.model, OPTIMIZER, "cpu")
        self.rt = Runtime(CPU, resolve_dtype(dtype, CPU))
        self.data, self.i, self.loss = data, 0, float("nan")

    def step(self) -> None:
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        with self.rt.autocast():
            _, loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), OPTIMIZER.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.loss = loss.item()


class Llama2c:
    """One training step as llama2.c's train.py runs it with device=cpu (float32)."""

    def __init__(self, lib: ModuleType, args: ModelArgs, init: dict, data: list[Batch]):
        theirs = lib.ModelArgs(
            dim=args.dim,
            n_layers=args.n_layers,
            n_heads=args.n_heads,
            n_kv_heads=args.kv_heads,
            vocab_size=args.vocab_size,
            hidden_dim=args.hidden,
            norm_eps=args.norm_eps,
            max_seq_len=args.max_seq_len,
            dropout=0.0,
        )
        self.model = lib.Transformer(theirs)
        # The same names and shapes as ours (both follow Meta's layout): same initial weights.
        self.model.load_state_dict(init, strict=True)
        c = OPTIMIZER
        with contextlib.redirect_stdout(sys.stderr):  # it prints its parameter counts
            self.opt = self.model.configure_optimizers(
                c.weight_decay, c.learning_rate, (c.beta1, c.beta2), "cpu"
            )
        self.data, self.i, self.loss = data, 0, float("nan")

    def step(self) -> None:
        x, y = self.data[self.i % len(self.data)]
        self.i += 1
        self.model(x, y)
        loss = self.model.last_loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), OPTIMIZER.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.loss = loss.item()


def bench_shape(name: str, steps: int, rounds: int, lib: ModuleType | None) -> dict[str, Any]:
    args, batch, seq = SHAPES[name]
    torch.manual_seed(0)
    init = Transformer(args).state_dict()
    data = batches(args, batch, seq)
    runs: dict[str, Any] = {"zhllama": Ours(args, init, data, "auto")}
    if resolve_dtype("auto", CPU) != torch.float32:
        runs["zhllama, float32"] = Ours(args, init, data, "float32")
    if lib is not None:
        runs[BASELINE] = Llama2c(lib, args, init, data)
    for r in runs.values():  # warm up
        r.step()
    speed = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for k, r in runs.items():
            t = time.perf_counter()
            for _ in range(steps):
                r.step()
            speed[k] = max(speed[k], batch * seq * steps / (time.perf_counter() - t))
    out: dict[str, Any] = {
        "batch": batch,
        "seq_len": seq,
        "steps_per_round": steps,
        "rounds": rounds,
        "tokens_per_s": {k: round(v) for k, v in speed.items()},
        "final_loss": {k: round(r.loss, 4) for k, r in runs.items()},
    }
    if lib is not None:
        out["vs_llama2c"] = {k: round(v / speed[BASELINE], 3) for k, v in speed.items()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shapes", default="tiny,15M,42M")
    opts = ap.parse_args()
    shapes = [s for s in opts.shapes.split(",") if s]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        print(f"error: unknown shape {unknown[0]}; known: {', '.join(SHAPES)}", file=sys.stderr)
        return 1
    try:
        folder = benchrefs.llama2c()
    except benchrefs.ReferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    lib = load_llama2c(folder) if folder is not None else None
    results = {
        "machine": {
            "cpu": benchrefs.cpu_name(),
            "avx512": benchrefs.has_avx512(),
            "threads": torch.get_num_threads(),
            "bf16_instructions": cpu_has_bf16(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "llama2c": str(folder) if folder is not None else None,
        "shapes": {n: bench_shape(n, opts.steps, opts.rounds, lib) for n in shapes},
    }
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    opts.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print("| shape | batch × seq | setting | tokens/s | vs llama2.c | final loss |")
    print("|---|---|---|---:|---:|---:|")
    for n, r in results["shapes"].items():
        for k, v in r["tokens_per_s"].items():
            vs = f"{r['vs_llama2c'][k]:.2f}×" if "vs_llama2c" in r else "n/a"
            cells = [n, f"{r['batch']} × {r['seq_len']}", k, f"{v:,}", vs]
            print("| " + " | ".join(cells) + f" | {r['final_loss'][k]:.4f} |")
    note = benchrefs.not_configured(benchrefs.LLAMA2C_ENV)
    print(
        f"\nbest of {opts.rounds} interleaved rounds of {opts.steps} steps; "
        f"{results['machine']['threads']} torch threads; dtype=auto is "
        f"{str(resolve_dtype('auto', CPU)).removeprefix('torch.')} on this CPU"
    )
    if note:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
