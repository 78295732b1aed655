"""`zhllama train` and `zhllama eval`.

Settings are `key=value` items (what `just train size=42M max_iters=200` forwards), each a
TrainConfig field, plus `size=` (the preset), `gpus=N` and `resume=true`. `gpus=N` re-runs the
command under `torchrun --standalone --nproc_per_node=N`. For several machines, run torchrun
yourself on each:

    torchrun --nnodes=2 --node_rank=R --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 -m zhllama_trainer size=110M data_dir=data/shards
"""

from __future__ import annotations

import math
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
        Path, typer.Argument(metavar="CHECKPOINT", help="a ckpt.pt written by zhllama train")
    ],
    items: SettingsArg = None,
    old_data_dir: Annotated[Path | None, typer.Option("--data-dir", hidden=True)] = None,
    old_eval_iters: Annotated[int | None, typer.Option("--eval-iters", hidden=True)] = None,
    old_batch_size: Annotated[int | None, typer.Option("--batch-size", hidden=True)] = None,
    old_device: Annotated[str | None, typer.Option("--device", hidden=True)] = None,
) -> None:
    """Validation loss and perplexity of a checkpoint.

    Settings: data_dir= (default: the run's), eval_iters= (batches), batch_size=,
    device= (auto, cpu, cuda, mps).

    Example: [bold]zhllama eval runs/tiny/ckpt.pt eval_iters=50[/bold]
    """
    import dataclasses

    from zhllama.config import build_config

    from zhllama_trainer import runtime
    from zhllama_trainer.checkpoint import load_checkpoint, load_model
    from zhllama_trainer.config import TrainConfig, config_from_dict
    from zhllama_trainer.train import evaluate as eval_loss
    from zhllama_trainer.train import open_data

    values: dict[str, Any] = {"device": "auto", **settings(items)}
    old = {"data_dir": old_data_dir, "eval_iters": old_eval_iters,
           "batch_size": old_batch_size, "device": old_device}  # fmt: skip
    for key, value in old.items():
        if value is not None:
            deprecated(f"--{key.replace('_', '-')} VALUE", f"{key}=VALUE")
            values[key] = value
    unknown = sorted(set(values) - {"data_dir", "eval_iters", "batch_size", "device"})
    if unknown:
        raise ZhllamaError(
            f"unknown setting {', '.join(unknown)} for zhllama eval; "
            "known settings: data_dir, eval_iters, batch_size, device"
        )
    ckpt = load_checkpoint(checkpoint)
    c = build_config(TrainConfig, values, base=config_from_dict(ckpt["config"]))
    shards, manifest = open_data(c)
    _check_same_tokenizer(checkpoint, ckpt, manifest, c.data_dir)
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


def _check_same_tokenizer(checkpoint: Path, ckpt: dict, manifest: dict, data_dir: Path) -> None:
    """Refuse data made with another tokenizer than the model's: its loss would mean nothing.
    The checkpoint records the tokenizer's sha256 (older ones: the run's tokenizer.model)."""
    import hashlib

    have = ckpt.get("tokenizer_sha256")
    if have is None:
        places = [Path(ckpt["tokenizer"])] if ckpt.get("tokenizer") else []
        places.append(checkpoint.parent / "tokenizer.model")
        found = next((p for p in places if p.is_file()), None)
        have = hashlib.sha256(found.read_bytes()).hexdigest() if found else None
    want = manifest.get("tokenizer_sha256")
    if have and want and have != want:
        raise ZhllamaError(
            f"{data_dir}: these shards were made with another tokenizer than {checkpoint} "
            f"(sha256 {want[:12]}…, the checkpoint's {have[:12]}…); evaluate on data made with "
            "the run's tokenizer (data_dir=FOLDER)"
        )
