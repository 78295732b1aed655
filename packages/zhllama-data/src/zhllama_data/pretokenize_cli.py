"""`zhllama data pretokenize`: the command line of zhllama_data.pretokenize.

Kept apart from the pipeline so that worker processes, which import the pipeline module, do not
import the CLI stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from zhllama.config import parse_overrides
from zhllama.errors import ZhllamaError

from zhllama_data.cli_options import SettingsOpt, SourceArg


def pretokenize_command(
    source: SourceArg,
    tokenizer: Annotated[Path, typer.Option("--tokenizer", "-t", help="tokenizer .model file")],
    out: Annotated[Path, typer.Option("--out", "-o", help="shard folder")],
    no_eos: Annotated[
        bool, typer.Option("--no-eos", help="no EOS after stories (llama2.c's layout)")
    ] = False,
    val_stories: Annotated[
        int | None, typer.Option("--val-stories", help="the first N stories are validation")
    ] = None,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="else this share of stories, spread evenly")
    ] = 0.01,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="encoding processes (default: CPUs)")
    ] = None,
    shard_tokens: Annotated[
        int, typer.Option("--shard-tokens", help="tokens per shard, at least")
    ] = 1 << 26,
    chunk_stories: Annotated[
        int, typer.Option("--chunk-stories", help="stories per worker task")
    ] = 1024,
    settings: SettingsOpt = None,
    tokenizer_component: Annotated[
        str, typer.Option("--tokenizer-component", help="tokenizer component")
    ] = "sentencepiece",
) -> None:
    """Tokenize a corpus into u16 shards: BOS + story + EOS, a held-out validation split.

    A rerun resumes where a killed run stopped; a finished folder is left as it is.

    Example: [bold]zhllama data pretokenize synthetic -t data/tok5000.model -o data/shards[/bold]
    """
    # imported here: the pipeline pulls in numpy, which every `zhllama` start would pay for
    from zhllama_data.pretokenize import (
        PretokenizeOptions,
        default_workers,
        parse_fraction,
        pretokenize,
    )

    if val_stories is not None and val_stories < 0:
        raise ZhllamaError(f"--val-stories must be 0 or more, not {val_stories}")
    if shard_tokens < 1 or chunk_stories < 1:
        raise ZhllamaError("--shard-tokens and --chunk-stories must be positive")
    opts = PretokenizeOptions(
        eos=not no_eos,
        val_stories=val_stories,
        val_fraction=parse_fraction(val_fraction),
        shard_tokens=shard_tokens,
        chunk_stories=chunk_stories,
        workers=workers or default_workers(),
        tokenizer_component=tokenizer_component,
        source_settings=parse_overrides(settings or []),
    )
    pretokenize(source, tokenizer, out, opts, Console())
