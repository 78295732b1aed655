"""`python -m zhllama_trainer key=value ...`: training without the zhllama shell (torchrun runs
this on every rank). Errors a user can cause are one line and exit code 1."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from zhllama.errors import ZhllamaError

from zhllama_trainer.cli import run_train


def main(argv: list[str]) -> int:
    try:
        run_train(argv)
    except ZhllamaError as e:
        Console(stderr=True).print(f"[red]error:[/] {e}", highlight=False)
        return 1
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
