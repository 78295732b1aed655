"""The `zhllama-rs` command of the wheel: `python -m zhllama_rs ...` or `zhllama-rs ...`.

It runs the Rust CLI (the zhllama-cli library, compiled into the extension) on this
process's stdin/stdout/stderr, so output and exit codes are the native binary's.
"""

from __future__ import annotations

import signal
import sys


def main() -> None:
    # The native binary dies on Ctrl-C (SIGINT's default action); Python would instead only set
    # a flag that nobody checks while the CLI runs. Restore the default to behave the same.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from zhllama_rs._native import run_cli

    # A fixed program name: clap prints it in usage and errors, as the binary does.
    raise SystemExit(run_cli(["zhllama-rs", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
