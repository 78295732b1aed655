"""The command-line vocabulary every `zhllama` command shares (README: "One CLI vocabulary").

- Settings are `KEY=VALUE` items after the positional arguments, for whatever component the
  command configures (a source's, TrainConfig's, an exporter's); sentencepiece's own options
  are `sp.KEY=VALUE` (`zhllama tokenizer train`).
- What a command writes is `-o/--out PATH`.
- One meaning per short flag: `-o` output, `-z` tokenizer file, `-f` format, `-n` how many,
  `-j` worker processes, `-e` engine; `-i -t -p -s` are run.c's prompt, temperature, top-p and
  seed (`zhllama sample`, as `zhllama-rs`).

Older spellings (`--set KEY=VALUE`/`-s`, `--sp`, `-t` for a tokenizer, a positional OUT,
`--key value` settings) still work for one release and print one deprecation line each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from zhllama.config import parse_overrides
from zhllama.errors import ZhllamaError

SettingsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="KEY=VALUE",
        help="settings, e.g. seed=7 path=data/ (see the component's settings)",
        show_default=False,
    ),
]
# `--set KEY=VALUE`, the settings syntax of earlier releases (hidden, deprecated).
OldSetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", hidden=True)]
SourceArg = Annotated[
    str,
    typer.Argument(
        metavar="SOURCE",
        help="corpus source: synthetic, jsonl, tinystories-zh or a plugin's (zhllama data sources)",
    ),
]


def out_option(help: str) -> Any:
    return typer.Option("--out", "-o", help=help, metavar="PATH")


def tokenizer_option(help: str = "tokenizer file") -> Any:
    return typer.Option("--tokenizer", "-z", help=help, metavar="FILE")


def deprecated(old: str, new: str) -> None:
    """One line on stderr: the old spelling works for this release only."""
    typer.secho(
        f"deprecated: {old} will be removed in the next release; write {new}",
        err=True,
        fg="yellow",
    )


def settings(items: list[str] | None, old_set: list[str] | None = None) -> dict[str, str]:
    """`KEY=VALUE` items (and the deprecated `--set` ones, with a warning) as a dict."""
    items = list(items or [])
    if old_set:
        deprecated("--set KEY=VALUE", "KEY=VALUE after the arguments")
        items = list(old_set) + items
    if any(i.startswith("--") for i in items):
        deprecated("--key value settings", "key=value")
    return parse_overrides(items)


def output(out: Path | None, positional: Path | None, what: str) -> Path:
    """The output path: `-o/--out`, or the deprecated positional OUT."""
    if positional is not None:
        if out is not None:
            raise ZhllamaError(f"two outputs given ({positional} and -o {out}); give -o only")
        deprecated(f"a positional OUT ({positional})", f"-o {positional}")
        return positional
    if out is None:
        raise ZhllamaError(f"no output given: pass -o {what}")
    return out


def open_source(name: str, values: dict[str, str]) -> Any:
    """The corpus source `name` with these settings, through the registry (its config
    dataclass converts and checks the values; an unknown key lists the known ones)."""
    from zhllama.registry import get_registry

    return get_registry().create("sources", name, **values)
