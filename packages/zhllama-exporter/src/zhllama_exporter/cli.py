"""`zhllama export`: turn a checkpoint (ckpt.pt or any exported format) into another format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from zhllama.cli_options import out_option, output, settings
from zhllama.config import build_config
from zhllama.contracts import Exporter
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry

from zhllama_exporter.components import FORMATS

console = Console(stderr=True)


def export(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            metavar="CHECKPOINT",
            help="ckpt.pt, a llama2c .bin (v0/v1/v2), a .gguf or an HF directory",
        ),
    ],
    items: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="KEY=VALUE",
            help="settings (format=, dtype=, group_size=, tokenizer=, weights_only=)",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, out_option("output .bin or .gguf file, or directory for hf")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help=f"{', '.join(FORMATS)} (default: gguf for OUT.gguf, else llama2c)",
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype", help="hf: fp32, fp16 or bf16; gguf: f32, f16, bf16 or q8_0 (default fp32)"
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            "-z",
            help="sentencepiece .model to ship with hf or gguf (gguf also takes a llama2.c "
            "tok.bin); default: the checkpoint's",
        ),
    ] = None,
    weights_only: Annotated[
        bool,
        typer.Option("--weights-only", help="hf, gguf: write no tokenizer (else one is required)"),
    ] = False,
    group_size: Annotated[
        int | None, typer.Option("--group-size", help="int8 group size (default: 64 or less)")
    ] = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="int8: print error per tensor kind")
    ] = True,
) -> None:
    """Export a model to llama2.c's .bin formats, a HuggingFace directory or GGUF.

    Example: [bold]zhllama export runs/15M/ckpt.pt -o model.bin --format llama2c[/bold];
    [bold]zhllama export runs/15M/ckpt.pt -o model.gguf --dtype q8_0[/bold] (for llama.cpp)
    """
    from zhllama_exporter.components import ExportConfig
    from zhllama_exporter.load import load_any

    items = list(items or [])
    positional = None
    if items and "=" not in items[0] and not items[0].startswith("-"):
        positional, items = Path(items[0]), items[1:]  # CKPT OUT, as earlier releases had it
    out = output(out, positional, "OUT")
    values = settings(items)
    name = fmt or values.pop("format", None) or ("gguf" if out.suffix == ".gguf" else "llama2c")
    _check_suffix(out, name)
    for key, value in (("dtype", dtype), ("tokenizer", tokenizer), ("group_size", group_size)):
        if value is not None:
            values[key] = value
    if weights_only:
        values["weights_only"] = True
    config = build_config(ExportConfig, values)
    registry = get_registry()
    if name not in registry.components("exporters"):
        known = ", ".join(registry.components("exporters"))
        raise ZhllamaError(f"unknown export format {name!r}; formats: {known}")
    exporter: Exporter = registry.create("exporters", name, config)  # checks the settings

    if out.exists() and checkpoint.exists() and out.resolve() == checkpoint.resolve():
        raise ZhllamaError(f"{out}: the output would overwrite the checkpoint being exported")
    with console.status(f"reading {checkpoint}"):
        loaded = load_any(checkpoint)
    if loaded.format == "gguf":
        tok = loaded.vocab.describe() if loaded.vocab else "no tokenizer"
        console.print(f"read {checkpoint}: gguf, {loaded.dtype}; tokenizer: {tok}", soft_wrap=True)
    with console.status(f"writing {out} ({name})"):
        result = exporter.export(loaded, out)
    for note in result.notes:
        console.print(note, soft_wrap=True, highlight=False, markup=False)
    for warning in result.warnings:
        console.print(f"[yellow]note:[/] {escape(warning)}", soft_wrap=True, highlight=False)
    s = loaded.weights.shape
    console.print(
        f"[green]wrote[/] {out} ({name}, {result.label}) from "
        f"{loaded.format} {checkpoint}: dim {s.dim}, hidden {s.hidden_dim}, layers {s.n_layers}, "
        f"heads {s.n_heads}/{s.n_kv_heads}, vocab {s.vocab_size}, seq {s.max_seq_len}, "
        f"{'shared' if s.shared_classifier else 'separate'} classifier"
    )
    if result.group_size is not None and report:
        _print_quant_report(loaded.weights, result.group_size)


def _check_suffix(out: Path, fmt: str) -> None:
    """An output name whose extension says another format is a mistake, not a file to write."""
    if out.suffix == ".gguf" and fmt != "gguf":
        raise ZhllamaError(f"{out}: a .gguf name for format {fmt}; use --format gguf")
    if out.suffix == ".bin" and fmt in ("gguf", "hf"):
        what = "a GGUF file: name it .gguf" if fmt == "gguf" else "a directory: give a folder name"
        raise ZhllamaError(f"{out}: a .bin name for format {fmt}, which writes {what}")


def _print_quant_report(weights: object, gs: int) -> None:
    from zhllama_exporter.report import by_kind, quant_report

    table = Table(title=f"int8 quantization error, group size {gs}")
    for col in ("tensor", "max |err|", "mean |err|", "max err / (scale/2)"):
        table.add_column(col, justify="left" if col == "tensor" else "right")
    for e in by_kind(quant_report(weights, gs)):  # type: ignore[arg-type]
        table.add_row(e.name, f"{e.max_abs:.3g}", f"{e.mean_abs:.3g}", f"{e.ratio:.3f}")
    console.print(table)
