"""Command-line pieces shared by the `zhllama data …` commands (sample, export, pretokenize…).

A command that reads a corpus takes the source name as an argument and its settings as repeated
`--set key=value` options; `source_from_cli` turns both into a source through the registry, and
the component's config dataclass converts and checks the values (zhllama.config.build_config).
"""

from __future__ import annotations

from typing import Annotated

import typer

from zhllama_data.sources import Source, open_source

SourceArg = Annotated[
    str,
    typer.Argument(
        metavar="SOURCE",
        help="corpus source: synthetic, jsonl, tinystories-zh or a plugin's (zhllama data sources)",
    ),
]
SettingsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="a source setting, repeatable, e.g. --set seed=7 --set path=data/",
    ),
]


def source_from_cli(name: str, settings: list[str] | None) -> Source:
    return open_source(name, list(settings or []))
