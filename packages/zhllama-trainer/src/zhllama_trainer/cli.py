"""`zhllama train` and `zhllama eval`.

Settings come as `key=value` items (what `just train size=42M max_iters=200` forwards) or as
`--key value` options; both name TrainConfig fields. `gpus=N` re-runs the command under
`torchrun --standalone --nproc_per_node=N`. For several machines, run torchrun yourself on each:

    torchrun --nnodes=2 --node_rank=R --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m zhllama_trainer size=110M data_dir=data/shards
"""

from __future__ import annotations

import math
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
    checkpoint: Annotated[Path, typer.Argument(help="a ckpt.pt written by zhllama train")],
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="shards (default: the run's)")
    ] = None,
    eval_iters: Annotated[int | None, typer.Option("--eval-iters", help="batches")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, mps")] = "auto",
) -> None:
    """Validation loss and perplexity of a checkpoint.

    Example: [bold]zhllama eval runs/tiny/ckpt.pt[/bold]
    """
    import dataclasses

    from zhllama_trainer import runtime
    from zhllama_trainer.checkpoint import load_checkpoint, load_model
    from zhllama_trainer.config import config_from_dict
    from zhllama_trainer.train import evaluate as eval_loss
    from zhllama_trainer.train import open_data

    c = config_from_dict(load_checkpoint(checkpoint)["config"])
    changes = {"data_dir": data_dir, "eval_iters": eval_iters, "batch_size": batch_size}
    c = dataclasses.replace(c, **{k: v for k, v in changes.items() if v is not None})
    c = dataclasses.replace(c, device=device)
    shards, _ = open_data(c)
    rt = runtime.start(c.device, c.dtype)
    model, args = load_model(checkpoint, rt.device)
    if args.vocab_size != shards.vocab_size:
        raise ZhllamaError(
            f"{checkpoint} has a vocabulary of {args.vocab_size} but {c.data_dir} was tokenized "
            f"with {shards.vocab_size}"
        )
    c = dataclasses.replace(c, max_seq_len=args.max_seq_len)
    loss = eval_loss(model, shards, c, rt)
    typer.echo(f"val loss {loss:.4f}  perplexity {math.exp(min(loss, 50)):.3f}")
    typer.echo(f"({c.eval_iters} batches of {c.batch_size}×{c.max_seq_len} from {c.data_dir})")
