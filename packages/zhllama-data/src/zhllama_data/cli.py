"""`zhllama data …`: look at corpus sources and export them (registered as `zhllama.commands`).

Each command is a small function; the shared argument types live in cli_options.py. A command
written in another module is added at the bottom of this file with one `app.command()` line.
"""

from __future__ import annotations

import dataclasses
import json
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer

from zhllama_data.cli_options import SettingsOpt, SourceArg, source_from_cli

app = typer.Typer(
    name="data",
    help="Corpus sources: print sample stories, export them as jsonl shards.\n\n"
    "Example: [bold]zhllama data sample synthetic -n 3[/bold]",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command()
def sample(
    source: SourceArg,
    num: Annotated[int, typer.Option("-n", "--num", help="how many stories to print")] = 3,
    settings: SettingsOpt = None,
    skip: Annotated[int, typer.Option("--skip", help="skip this many stories first")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object a line")] = False,
) -> None:
    """Print a few stories of a corpus source.

    Examples:

      [bold]zhllama data sample synthetic -n 3[/bold]

      [bold]zhllama data sample synthetic -n 2 --set seed=42[/bold]

      [bold]zhllama data sample jsonl --set path=my_stories/ --set text_key=text[/bold]

      [bold]zhllama data sample tinystories-zh --set local_dir=TinyStoriesChinese/[/bold]
    """
    from zhllama.errors import ZhllamaError

    if num < 1 or skip < 0:
        raise ZhllamaError("-n must be at least 1 and --skip at least 0")
    stories = source_from_cli(source, settings).stories()
    for i, story in enumerate(islice(stories, skip, skip + num)):
        if as_json:
            typer.echo(json.dumps({"story_zh": story}, ensure_ascii=False))
        else:
            typer.echo(("\n" if i else "") + story)


@app.command()
def export(
    source: SourceArg,
    out: Annotated[Path, typer.Argument(help="output folder for the jsonl shards")],
    num: Annotated[
        int | None, typer.Option("-n", "--num", help="how many stories (default: all)")
    ] = None,
    settings: SettingsOpt = None,
    shard_size: Annotated[
        int, typer.Option("--shard-size", help="stories per shard file")
    ] = 100_000,
    force: Annotated[bool, typer.Option("--force", help="replace a non-empty OUT")] = False,
) -> None:
    """Write stories of a source as jsonl shards: OUT/stories-00000.jsonl, … ({"story_zh": …}).

    The folder appears only when complete (a killed export leaves nothing half-written).

    Examples:

      [bold]zhllama data export synthetic data/synth -n 20000[/bold]

      [bold]zhllama data export synthetic data/s -n 100000 --shard-size 25000 --set seed=1[/bold]

      [bold]zhllama data export jsonl data/clean --set path=raw/ --set strict=true[/bold]
    """
    from zhllama_data.export import export_jsonl

    stories = source_from_cli(source, settings).stories()
    result = export_jsonl(stories, out, limit=num, shard_size=shard_size, force=force)
    typer.echo(f"wrote {result.stories} stories in {len(result.shards)} shard(s) to {out}")


@app.command()
def sources() -> None:
    """List the corpus sources and their settings (for --set KEY=VALUE).

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


# Commands defined in their own modules are added here, one line each, e.g.:
#   from zhllama_data.pretokenize import pretokenize
#   app.command()(pretokenize)

from zhllama_data.pretokenize_cli import pretokenize_command  # noqa: E402

app.command("pretokenize")(pretokenize_command)
