"""The commands of the wheel: `zhllama-rs ...` (or `python -m zhllama_rs ...`) and
`zhllama-server ...`.

Each runs the Rust command's library (zhllama-cli, zhllama-server, compiled into the
extension) on this process's stdin/stdout/stderr, so output and exit codes are the native
binaries'.
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


def server() -> None:
    # The server handles SIGINT and SIGTERM itself (it drains in-flight streams, then exits 0);
    # Python's SIGINT handler would only set a flag and raise KeyboardInterrupt afterwards.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from zhllama_rs._native import run_server

    raise SystemExit(run_server(["zhllama-server", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
