"""The `zhllama` command: one CLI for the whole pipeline.

The shell lives here; each package adds its own sub-commands through the `zhllama.commands`
entry-point group (a `typer.Typer` becomes a command group, a function a single command).
Errors a user can cause are one red line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from zhllama import help_style  # noqa: F401  (help screens without {NAME} and <bool>)
from zhllama.errors import ZhllamaError, one_line, quote_name
from zhllama.registry import KINDS, get_registry

app = typer.Typer(
    name="zhllama",
    help="Train, export and run small Chinese Llama models.\n\n"
    "Example: [bold]zhllama data sample synthetic -n 3[/bold]",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


def _versions() -> str:
    """One line per installed zhllama distribution, then Python and torch (read from package
    metadata, so `--version` imports nothing heavy)."""
    from importlib.metadata import PackageNotFoundError, distributions, version

    ours = sorted({(d.metadata["Name"], d.version) for d in distributions() if d.metadata["Name"]})
    lines = [f"{name} {ver}" for name, ver in ours if name.lower().startswith("zhllama")]
    lines.append(f"python {sys.version.split()[0]}")
    try:
        lines.append(f"torch {version('torch')}")
    except PackageNotFoundError:
        lines.append("torch (not installed)")
    return "\n".join(lines)


def _print_version(value: bool) -> None:
    if value:
        print(_versions())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_print_version, is_eager=True, help="print versions, exit"
        ),
    ] = False,
) -> None:
    """Train, export and run small Chinese Llama models."""


@app.command()
def plugins() -> None:
    """List every registered component (sources, tokenizers, presets, exporters, engines).

    Example: [bold]zhllama plugins[/bold]
    """
    registry = get_registry()
    table = Table(title="zhllama components")
    table.add_column("kind")
    table.add_column("name", style="bold")
    table.add_column("description")
    for kind in KINDS:
        for name, comp in registry.components(kind).items():
            table.add_row(kind, name, comp.description)
    console.print(table)
    for f in registry.failures():
        err_console.print(
            f"[red]plugin {f.kind}/{f.name} ({f.target}) failed to load:[/] {f.error}"
        )


@app.command()
def sample(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            metavar="MODEL", help="a llama2c .bin (rust engine) or a ckpt.pt (torch engine)"
        ),
    ],
    prompt: Annotated[str, typer.Option("-i", "--prompt", help="story beginning")] = "",
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine", "-e", help="engine component (default: torch for a ckpt.pt, else rust)"
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None, typer.Option("-z", "--tokenizer", help="tokenizer file")
    ] = None,
    steps: Annotated[
        int, typer.Option("-n", "--steps", help="positions to run, 0 = context")
    ] = 256,
    temperature: Annotated[float, typer.Option("-t", "--temperature")] = 1.0,
    top_p: Annotated[float, typer.Option("-p", "--top-p")] = 0.9,
    seed: Annotated[int | None, typer.Option("-s", "--seed", help="RNG seed")] = None,
    threads: Annotated[int | None, typer.Option("--threads")] = None,
    no_eos_stop: Annotated[bool, typer.Option("--no-eos-stop", help="run past EOS")] = False,
) -> None:
    """Generate a story with an inference engine.

    Example: [bold]zhllama sample model.bin -z tok5000.bin -i 从前 --engine rust[/bold]
    """
    from zhllama.contracts import EngineConfig, SampleSettings

    if not checkpoint.exists():
        raise ZhllamaError(f"{checkpoint}: no such checkpoint")
    engine = engine or engine_for(checkpoint)
    eng = get_registry().create(
        "engines", engine, EngineConfig(checkpoint=checkpoint, tokenizer=tokenizer, threads=threads)
    )
    settings = SampleSettings(prompt, steps, temperature, top_p, seed, not no_eos_stop)
    for piece in eng.stream(settings):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def engine_for(checkpoint: Path) -> str:
    """The engine that reads this file: a training ckpt.pt (torch.save writes a zip archive)
    needs the torch engine; llama2.c .bin files go to the Rust engine."""
    if checkpoint.is_file():
        with open(checkpoint, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                return "torch"
    return "rust"


def _add_package_commands() -> None:
    for ep in entry_points(group="zhllama.commands"):
        try:
            obj = ep.load()
        except Exception as e:
            err_console.print(f"[yellow]commands {ep.name} ({ep.value}) failed to load:[/] {e}")
            continue
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=ep.name)
        else:
            # a command may ask for click context settings (e.g. to pass `--key value` through)
            settings = getattr(obj, "context_settings", None)
            app.command(name=ep.name, context_settings=settings)(obj)


_add_package_commands()


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(exit, abort, usage-error) exception types of whichever click typer runs on: the copy
    that typer 0.29+ vendors as `typer._click`, or the click package older typers depend on.
    Neither is imported unconditionally: typer 0.29 no longer depends on click, so a fresh
    install may not have it."""
    exits: list[type] = [typer.Exit]
    aborts: list[type] = [typer.Abort]
    errors: list[type] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            found = importlib.import_module(name)
        except ImportError:
            continue
        exits.append(getattr(found, "Exit", typer.Exit))
        aborts.append(getattr(found, "Abort", typer.Abort))
        errors.append(found.ClickException)
    return tuple(exits), tuple(aborts), tuple(errors)


_EXIT, _ABORT, _USAGE = _click_errors()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and a non-zero exit code."""
    try:
        result = app(args=argv, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except ZhllamaError as e:
        _error_line(str(e))
        return 1
    except OSError as e:
        # operating-system failures a user causes (missing, read-only, full, in the way)
        name = f"{quote_name(e.filename)}: " if getattr(e, "filename", None) else ""
        why = e.strerror or str(e)
        if isinstance(e, FileExistsError):
            why = "exists and is not a folder"
        _error_line(f"{name}{why}")
        return 1
    except _EXIT as e:
        return e.exit_code  # type: ignore[attr-defined]
    except _USAGE as e:
        e.show()  # type: ignore[attr-defined]
        return e.exit_code  # type: ignore[attr-defined]
    except (*_ABORT, KeyboardInterrupt):
        err_console.print("[yellow]interrupted[/]")
        return 130


def _error_line(message: str) -> None:
    """The one red line of a user error: control characters escaped, no rich markup read from
    the message (a name like `[red]x` is printed as it is)."""
    err_console.print(
        f"[red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True
    )


def run() -> None:
    sys.exit(main())
