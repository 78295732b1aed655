"""`zhllama train` and `zhllama eval`.

Settings come as `key=value` items (what `just train size=42M max_iters=200` forwards) or as
`--key value` options; both name TrainConfig fields. `gpus=N` re-runs the command under
`torchrun --standalone --nproc_per_node=N`. For several machines, run torchrun yourself on each:

    torchrun --nnodes=2 --node_rank=R --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m zhllama_trainer size=110M data_dir=data/shards
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from zhllama.config import parse_overrides
from zhllama.errors import ZhllamaError

# Read by zhllama's CLI shell when it adds this command: pass unknown `--key value` through.
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def _split(settings: dict[str, str]) -> tuple[str, int, bool, dict[str, str]]:
    size = settings.pop("size", "15M")
    gpus = settings.pop("gpus", "1")
    resume = settings.pop("resume", "false").lower() in {"1", "true", "yes", "on"}
    try:
        n = int(gpus)
    except ValueError:
        raise ZhllamaError(f"gpus must be a whole number, not {gpus!r}") from None
    return size, n, resume, settings


def run_train(items: list[str]) -> None:
    """Parse `items` and train (also the `python -m zhllama_trainer` entry torchrun runs)."""
    from zhllama_trainer.openmp import tune_for_cpu_training

    tune_for_cpu_training()  # before torch is imported (below); torchrun's workers inherit it
    from zhllama_trainer.config import make_config
    from zhllama_trainer.train import train as train_loop

    size, gpus, resume, overrides = _split(parse_overrides(items))
    config = make_config(size, overrides)  # check every key before launching anything
    if gpus > 1 and "RANK" not in os.environ:
        forwarded = [f"size={size}"] + [f"{k}={v}" for k, v in overrides.items()]
        forwarded += ["resume=true"] if resume else []
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={gpus}", "-m", "zhllama_trainer", *forwarded]  # fmt: skip
        raise typer.Exit(subprocess.call(cmd))
    train_loop(config, resume=resume)


def train(
    settings: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[KEY=VALUE]...",
            help="TrainConfig settings, e.g. max_iters=200 batch_size=8 (or --max-iters 200)",
            show_default=False,
        ),
    ] = None,
    size: Annotated[str | None, typer.Option("--size", help="preset: tiny, 15M, 42M, 110M")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="pretokenized shards (default data/shards)")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="run folder (default runs/SIZE)")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from OUT_DIR/ckpt.pt")] = False,
    gpus: Annotated[int | None, typer.Option("--gpus", help="processes via torchrun")] = None,
) -> None:
    """Train a model from a size preset on pretokenized shards.

    Example: [bold]zhllama train size=tiny max_iters=200[/bold] or
    [bold]zhllama train --size 42M --batch-size 8 --gpus 4[/bold]. Writes ckpt.pt, metrics.jsonl,
    loss.png, and model.bin + tokenizer.bin (for zhllama-rs) whenever validation loss improves.
    """
    items = list(settings or [])
    named = {"size": size, "data_dir": data_dir, "out_dir": out_dir, "gpus": gpus}
    items += [f"{k}={v}" for k, v in named.items() if v is not None]
    items += ["resume=true"] if resume else []
    run_train(items)


train.context_settings = EXTRA_ARGS  # type: ignore[attr-defined]


def evaluate(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            metavar="MODEL", help="a ckpt.pt of zhllama train, or an exported llama2c .bin"
        ),
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="shards (default: the run's, from ckpt.pt)"),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="one pass over the whole validation split")
    ] = False,
    eval_iters: Annotated[
        int | None, typer.Option("--eval-iters", help="random batches (default: the run's)")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, mps")] = "auto",
    threads: Annotated[
        int | None, typer.Option("--threads", help="engine threads for a .bin")
    ] = None,
) -> None:
    """Validation loss and perplexity of a checkpoint or an exported .bin (v0/v1/int8).

    Example: [bold]zhllama eval runs/tiny/ckpt.pt --full[/bold]
    """
    from zhllama_trainer.evaluation import EvalRequest, run_eval

    req = EvalRequest(checkpoint, data_dir, full, eval_iters, batch_size, device, threads)
    result, tokenizer_note = run_eval(req)
    typer.echo(f"val loss {result.loss:.4f}  perplexity {result.perplexity:.3f}")
    typer.echo(f"({result.method}; {tokenizer_note})")
