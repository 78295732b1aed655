"""`zhllama data …`: look at corpus sources, export them, pretokenize them (registered as
`zhllama.commands`). The option types are the shared ones of zhllama.cli_options.

The pipelines (export.py, pretokenize.py) are imported inside the commands: they pull in numpy,
which every `zhllama` start would pay for, and pretokenize's worker processes import the
pipeline module, never this CLI.
"""

from __future__ import annotations

import dataclasses
import json
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer
from zhllama.cli_options import (
    OldSetOpt,
    SettingsArg,
    SourceArg,
    open_source,
    out_option,
    output,
    settings,
    tokenizer_option,
)
from zhllama.errors import ZhllamaError

app = typer.Typer(
    name="data",
    help="Corpus sources: print sample stories, export them as jsonl shards, pretokenize them "
    "into u16 shards for training.\n\n"
    "Example: [bold]zhllama data sample synthetic -n 3[/bold]",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command()
def sample(
    source: SourceArg,
    items: SettingsArg = None,
    num: Annotated[int, typer.Option("-n", "--num", help="how many stories to print")] = 3,
    old_set: OldSetOpt = None,
    skip: Annotated[int, typer.Option("--skip", help="skip this many stories first")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object a line")] = False,
) -> None:
    """Print a few stories of a corpus source.

    Examples:

      [bold]zhllama data sample synthetic -n 3[/bold]

      [bold]zhllama data sample synthetic seed=42 -n 2[/bold]

      [bold]zhllama data sample jsonl path=my_stories/ text_key=text[/bold]

      [bold]zhllama data sample tinystories-zh local_dir=TinyStoriesChinese/[/bold]
    """
    if num < 1 or skip < 0:
        raise ZhllamaError("-n must be at least 1 and --skip at least 0")
    stories = open_source(source, settings(items, old_set)).stories()
    for i, story in enumerate(islice(stories, skip, skip + num)):
        if as_json:
            typer.echo(json.dumps({"story_zh": story}, ensure_ascii=False))
        else:
            typer.echo(("\n" if i else "") + story)


@app.command()
def export(
    source: SourceArg,
    items: SettingsArg = None,
    out: Annotated[Path | None, out_option("output folder for the jsonl shards")] = None,
    num: Annotated[
        int | None, typer.Option("-n", "--num", help="how many stories (default: all)")
    ] = None,
    old_set: OldSetOpt = None,
    shard_size: Annotated[
        int, typer.Option("--shard-size", help="stories per shard file")
    ] = 100_000,
    force: Annotated[bool, typer.Option("--force", help="replace a non-empty OUT")] = False,
) -> None:
    """Write stories of a source as jsonl shards: OUT/stories-00000.jsonl, … ({"story_zh": …}).

    The folder appears only when complete (a killed export leaves nothing half-written).

    Examples:

      [bold]zhllama data export synthetic -o data/synth -n 20000[/bold]

      [bold]zhllama data export synthetic seed=1 -o data/s -n 100000 --shard-size 25000[/bold]

      [bold]zhllama data export jsonl path=raw/ strict=true -o data/clean[/bold]
    """
    from zhllama_data.export import export_jsonl

    items, positional = _positional_out(items)
    out = output(out, positional, "FOLDER")
    stories = open_source(source, settings(items, old_set)).stories()
    result = export_jsonl(stories, out, limit=num, shard_size=shard_size, force=force)
    typer.echo(f"wrote {result.stories} stories in {len(result.shards)} shard(s) to {out}")


def _positional_out(items: list[str] | None) -> tuple[list[str], Path | None]:
    """An OUT written before the settings as earlier releases had it (deprecated)."""
    items = list(items or [])
    if items and "=" not in items[0] and not items[0].startswith("-"):
        return items[1:], Path(items[0])
    return items, None


@app.command()
def sources() -> None:
    """List the corpus sources and their settings (KEY=VALUE after the source's name).

    Example: [bold]zhllama data sources[/bold]
    """
    from rich.console import Console
    from rich.table import Table
    from zhllama.registry import get_registry

    table = Table(title="corpus sources")
    for column in ("name", "settings (defaults)", "description"):
        table.add_column(column)
    for name, comp in get_registry().components("sources").items():
        fields = dataclasses.fields(comp.config) if comp.config else ()
        defaults = ", ".join(
            f.name if f.default is dataclasses.MISSING else f"{f.name}={f.default}" for f in fields
        )
        table.add_row(name, defaults, comp.description)
    Console().print(table)


@app.command()
def pretokenize(
    source: SourceArg,
    items: SettingsArg = None,
    tokenizer: Annotated[Path | None, tokenizer_option("tokenizer .model file")] = None,
    out: Annotated[Path | None, out_option("shard folder")] = None,
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
    old_set: OldSetOpt = None,
    old_tokenizer: Annotated[Path | None, typer.Option("-t", hidden=True)] = None,
    tokenizer_component: Annotated[
        str, typer.Option("--tokenizer-component", help="tokenizer component")
    ] = "sentencepiece",
) -> None:
    """Tokenize a corpus into u16 shards: BOS + story + EOS, a held-out validation split.

    A rerun resumes where a killed run stopped; a finished folder is left as it is.

    Example: [bold]zhllama data pretokenize synthetic -z data/tok5000.model -o data/shards[/bold]
    """
    from rich.console import Console
    from zhllama.cli_options import deprecated

    from zhllama_data.pretokenize import (
        PretokenizeOptions,
        default_workers,
        parse_fraction,
        pretokenize,
    )

    if old_tokenizer is not None:
        deprecated("-t for the tokenizer", "-z (-t is the temperature)")
        tokenizer = tokenizer or old_tokenizer
    if tokenizer is None:
        raise ZhllamaError("no tokenizer given: pass -z TOK.model")
    if out is None:
        raise ZhllamaError("no output given: pass -o FOLDER")
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
        source_settings=settings(items, old_set),
    )
    pretokenize(source, tokenizer, out, opts, Console())
