"""`zhllama tokenizer ...`: train, export and inspect sentencepiece tokenizers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from zhllama.config import parse_overrides
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry

app = typer.Typer(
    help="Train a sentencepiece tokenizer, export it (llama2.c tok.bin, HuggingFace), report.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
console = Console()

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="source setting key=value (repeatable), e.g. num_stories=2000"),
]


def _source(name: str, settings: list[str] | None):
    return get_registry().create("sources", name, **parse_overrides(settings or []))


@app.command()
def train(
    source: Annotated[str, typer.Argument(help="corpus source component, e.g. synthetic")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("data"),
    vocab_size: Annotated[int, typer.Option("--vocab-size", "-v")] = 5000,
    settings: SetOpt = None,
    max_sentences: Annotated[
        int, typer.Option("--max-sentences", help="lines handed to the trainer, at most")
    ] = 1_000_000,
    heldout_stories: Annotated[
        int, typer.Option("--heldout-stories", help="stories held out for the report")
    ] = 500,
    name: Annotated[str | None, typer.Option("--name", help="file stem (tok{vocab})")] = None,
    sp: Annotated[
        list[str] | None,
        typer.Option("--sp", help="sentencepiece option key=value (repeatable)"),
    ] = None,
) -> None:
    """Train a sentencepiece BPE tokenizer on a corpus source (seed settings by default).

    Writes DIR/tokN.model, .vocab, .bin (llama2.c) and .report.json (held-out figures).

    Example: [bold]zhllama tokenizer train synthetic --vocab-size 5000 --out data[/bold]
    """
    from zhllama_tokenizer.train import TrainOptions, train_tokenizer

    if vocab_size < 4:
        raise ZhllamaError(f"--vocab-size {vocab_size} is too small")
    overrides = {k: v for k, v in parse_overrides(sp or []).items()}
    opts = TrainOptions(vocab_size, max_sentences, heldout_stories, name=name, sp=overrides)
    result = train_tokenizer(_source(source, settings), out, opts, console)
    console.print(f"wrote {result.model}, {result.bin} and {result.report_path}")


@app.command()
def export(
    model: Annotated[Path, typer.Argument(help="sentencepiece .model file")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="llama2c, llama2c-latin1 (old bytes) or hf")
    ] = "llama2c",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="output file (folder for hf)")
    ] = None,
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
    model: Annotated[Path, typer.Argument(help="sentencepiece .model file")],
    source: Annotated[str, typer.Option("--source", "-s", help="corpus source")] = "synthetic",
    settings: SetOpt = None,
    stories: Annotated[int, typer.Option("--stories", "-n", help="stories to encode")] = 500,
) -> None:
    """Characters per token, byte-fallback share and merges of a tokenizer on a source.

    Example: [bold]zhllama tokenizer report data/tok5000.model --source synthetic[/bold]
    """
    from itertools import islice

    from zhllama_tokenizer.report import print_report, tokenizer_report
    from zhllama_tokenizer.spm import load_processor

    sp_model, _ = load_processor(model)
    texts = list(islice(_source(source, settings).stories(), stories))
    print_report(tokenizer_report(sp_model, texts), console, title=f"{model} on {source}")
