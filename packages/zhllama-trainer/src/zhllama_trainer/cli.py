"""`zhllama train` and `zhllama eval`.

Settings are `key=value` items (what `just train size=42M max_iters=200` forwards), each a
TrainConfig field, plus `size=` (the preset), `gpus=N` and `resume=true`. `gpus=N` re-runs the
command under `torchrun --standalone --nproc_per_node=N`. For several machines, run torchrun
yourself on each:

    torchrun --nnodes=2 --node_rank=R --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m zhllama_trainer size=110M data_dir=data/shards
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from zhllama.cli_options import SettingsArg, deprecated, out_option, settings
from zhllama.config import parse_overrides
from zhllama.errors import ZhllamaError

# Read by zhllama's CLI shell when it adds this command: pass `--key value` through (the
# settings spelling of earlier releases, deprecated).
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
_TRUE = {"1", "true", "yes", "on"}


def _split(values: dict[str, Any]) -> tuple[str, int, bool, dict[str, Any]]:
    size = str(values.pop("size", "15M"))
    gpus = values.pop("gpus", "1")
    resume = str(values.pop("resume", "false")).lower() in _TRUE
    try:
        n = int(gpus)
    except ValueError:
        raise ZhllamaError(f"gpus must be a whole number, not {gpus!r}") from None
    return size, n, resume, values


def run_train(items: list[str]) -> None:
    """Parse `key=value` items and train (the `python -m zhllama_trainer` entry torchrun runs)."""
    train_with(parse_overrides(items))


def train_with(values: dict[str, Any]) -> None:
    """Train with these settings (TrainConfig fields plus size, gpus, resume)."""
    from zhllama_trainer.openmp import tune_for_cpu_training

    tune_for_cpu_training()  # before torch is imported (below); torchrun's workers inherit it
    from zhllama_trainer.config import make_config
    from zhllama_trainer.train import train as train_loop

    size, gpus, resume, overrides = _split(dict(values))
    config = make_config(size, overrides)  # check every key before launching anything
    if gpus > 1 and "RANK" not in os.environ:
        # the worker processes get the settings as command-line items again
        forwarded = [f"size={size}"] + [f"{k}={v}" for k, v in overrides.items()]
        forwarded += ["resume=true"] if resume else []
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={gpus}", "-m", "zhllama_trainer", *forwarded]  # fmt: skip
        raise typer.Exit(subprocess.call(cmd))
    train_loop(config, resume=resume)


def train(
    ctx: typer.Context,
    items: SettingsArg = None,
    out: Annotated[Path | None, out_option("run folder (out_dir=; default runs/SIZE)")] = None,
    old_size: Annotated[str | None, typer.Option("--size", hidden=True)] = None,
    old_data_dir: Annotated[Path | None, typer.Option("--data-dir", hidden=True)] = None,
    old_out_dir: Annotated[Path | None, typer.Option("--out-dir", hidden=True)] = None,
    old_resume: Annotated[bool, typer.Option("--resume", hidden=True)] = False,
    old_gpus: Annotated[int | None, typer.Option("--gpus", hidden=True)] = None,
) -> None:
    """Train a model from a size preset on pretokenized shards.

    Settings: size= (tiny, 15M, 42M, 110M or a plug-in's), any TrainConfig field
    (data_dir=, max_iters=, batch_size=, …), gpus=N (torchrun), resume=true.

    Example: [bold]zhllama train size=tiny max_iters=200[/bold] or
    [bold]zhllama train size=42M batch_size=8 gpus=4[/bold]. Writes ckpt.pt, metrics.jsonl,
    loss.png, and model.bin + tokenizer.bin (for zhllama-rs) whenever validation loss improves.
    """
    values: dict[str, Any] = settings(list(items or []) + list(ctx.args))
    old = {"size": old_size, "data_dir": old_data_dir, "out_dir": old_out_dir, "gpus": old_gpus}
    for key, value in old.items():
        if value is not None:
            deprecated(f"--{key.replace('_', '-')} VALUE", f"{key}=VALUE")
            values[key] = value
    if old_resume:
        deprecated("--resume", "resume=true")
        values["resume"] = "true"
    if out is not None:
        values["out_dir"] = out
    train_with(values)


train.context_settings = EXTRA_ARGS  # type: ignore[attr-defined]


def evaluate(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            metavar="MODEL", help="a ckpt.pt of zhllama train, or an exported llama2c .bin"
        ),
    ],
    items: SettingsArg = None,
    full: Annotated[
        bool, typer.Option("--full", help="one pass over the whole validation split")
    ] = False,
    old_data_dir: Annotated[Path | None, typer.Option("--data-dir", hidden=True)] = None,
    old_eval_iters: Annotated[int | None, typer.Option("--eval-iters", hidden=True)] = None,
    old_batch_size: Annotated[int | None, typer.Option("--batch-size", hidden=True)] = None,
    old_device: Annotated[str | None, typer.Option("--device", hidden=True)] = None,
) -> None:
    """Validation loss and perplexity of a checkpoint or an exported .bin (v0/v1/int8).

    Settings: data_dir= (default: the run's), eval_iters= (random batches), batch_size=,
    device= (auto, cpu, cuda, mps), threads= (the engine's, for a .bin).

    Example: [bold]zhllama eval runs/tiny/ckpt.pt --full[/bold]
    """
    from zhllama_trainer.evaluation import EvalRequest, run_eval

    values: dict[str, Any] = dict(settings(items))
    old = {"data_dir": old_data_dir, "eval_iters": old_eval_iters,
           "batch_size": old_batch_size, "device": old_device}  # fmt: skip
    for key, value in old.items():
        if value is not None:
            deprecated(f"--{key.replace('_', '-')} VALUE", f"{key}=VALUE")
            values[key] = value
    known = ("data_dir", "eval_iters", "batch_size", "device", "threads")
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ZhllamaError(
            f"unknown setting {', '.join(unknown)} for zhllama eval; "
            f"known settings: {', '.join(known)}"
        )

    def number(key: str) -> int | None:
        if key not in values:
            return None
        try:
            return int(values[key])
        except ValueError:
            raise ZhllamaError(f"{key}={values[key]}: not a whole number") from None

    data_dir = Path(values["data_dir"]) if "data_dir" in values else None
    req = EvalRequest(
        checkpoint,
        data_dir,
        full,
        number("eval_iters"),
        number("batch_size"),
        str(values.get("device", "auto")),
        number("threads"),
    )
    result, tokenizer_note = run_eval(req)
    typer.echo(f"val loss {result.loss:.4f}  perplexity {result.perplexity:.3f}")
    typer.echo(f"({result.method}; {tokenizer_note})")
