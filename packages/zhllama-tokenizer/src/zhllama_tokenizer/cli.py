"""`zhllama tokenizer ...`: train, export and inspect sentencepiece tokenizers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from zhllama.cli_options import (
    OldSetOpt,
    SettingsArg,
    deprecated,
    open_source,
    out_option,
    settings,
)
from zhllama.config import parse_overrides
from zhllama.errors import ZhllamaError

app = typer.Typer(
    help="Train a sentencepiece tokenizer, export it (llama2.c tok.bin, HuggingFace), report.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
console = Console()

SP_PREFIX = "sp."  # `sp.KEY=VALUE`: a sentencepiece trainer option, not a source setting


@app.command()
def train(
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="corpus source component, e.g. synthetic")
    ],
    items: SettingsArg = None,
    out: Annotated[Path, out_option("output folder")] = Path("data"),
    vocab_size: Annotated[int, typer.Option("--vocab-size", "-v")] = 5000,
    old_set: OldSetOpt = None,
    max_sentences: Annotated[
        int, typer.Option("--max-sentences", help="lines handed to the trainer, at most")
    ] = 1_000_000,
    heldout_stories: Annotated[
        int, typer.Option("--heldout-stories", help="stories held out for the report")
    ] = 500,
    name: Annotated[str | None, typer.Option("--name", help="file stem (tok{vocab})")] = None,
    old_sp: Annotated[list[str] | None, typer.Option("--sp", hidden=True)] = None,
) -> None:
    """Train a sentencepiece BPE tokenizer on a corpus source (seed settings by default).

    KEY=VALUE items are the source's settings; sp.KEY=VALUE items are sentencepiece trainer
    options (e.g. sp.character_coverage=0.9995). Writes DIR/tokN.model, .vocab, .bin (llama2.c)
    and .report.json (held-out figures).

    Example: [bold]zhllama tokenizer train synthetic num_stories=2000 -v 2048 -o data[/bold]
    """
    from zhllama_tokenizer.train import TrainOptions, train_tokenizer

    if vocab_size < 4:
        raise ZhllamaError(f"--vocab-size {vocab_size} is too small")
    values = settings(items, old_set)
    sp = {k[len(SP_PREFIX) :]: v for k, v in values.items() if k.startswith(SP_PREFIX)}
    if old_sp:
        deprecated("--sp KEY=VALUE", "sp.KEY=VALUE")
        sp = {**parse_overrides(old_sp), **sp}
    values = {k: v for k, v in values.items() if not k.startswith(SP_PREFIX)}
    opts = TrainOptions(vocab_size, max_sentences, heldout_stories, name=name, sp=sp)
    result = train_tokenizer(open_source(source, values), out, opts, console)
    console.print(f"wrote {result.model}, {result.bin} and {result.report_path}")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="sentencepiece .model file")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="llama2c, llama2c-latin1 (old bytes) or hf")
    ] = "llama2c",
    out: Annotated[Path | None, out_option("output file (folder for hf)")] = None,
    model_max_length: Annotated[
        int | None, typer.Option("--model-max-length", help="hf: the model's context")
    ] = None,
) -> None:
    """Export a tokenizer: llama2.c tokN.bin or HuggingFace tokenizer files.

    Example: [bold]zhllama tokenizer export data/tok5000.model --format hf --out hf-tok[/bold]
    """
    from zhllama_tokenizer.binfile import export_llama2c
    from zhllama_tokenizer.hf import export_hf

    if format in ("llama2c", "llama2c-latin1"):
        fmt = "hex" if format == "llama2c" else "latin1"
        path = export_llama2c(model, out, byte_format=fmt)
    elif format == "hf":
        path = export_hf(model, out or model.with_name(model.stem + "-hf"), model_max_length)
    else:
        raise ZhllamaError(f"unknown format {format!r}; formats: llama2c, llama2c-latin1, hf")
    console.print(f"wrote {path}")


@app.command()
def report(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="sentencepiece .model file")],
    items: SettingsArg = None,
    source: Annotated[str, typer.Option("--source", help="corpus source")] = "synthetic",
    old_source: Annotated[str | None, typer.Option("-s", hidden=True)] = None,
    old_set: Annotated[list[str] | None, typer.Option("--set", hidden=True)] = None,
    stories: Annotated[int, typer.Option("--stories", "-n", help="stories to encode")] = 500,
) -> None:
    """Characters per token, byte-fallback share and merges of a tokenizer on a source.

    KEY=VALUE items are the source's settings.

    Example: [bold]zhllama tokenizer report data/tok5000.model --source synthetic seed=3[/bold]
    """
    if old_source is not None:
        deprecated("-s for the source", "--source (-s is the seed)")
        source = old_source
    from itertools import islice

    from zhllama_tokenizer.report import print_report, tokenizer_report
    from zhllama_tokenizer.spm import load_processor

    sp_model, _ = load_processor(model)
    texts = list(islice(open_source(source, settings(items, old_set)).stories(), stories))
    print_report(tokenizer_report(sp_model, texts), console, title=f"{model} on {source}")
