"""`zhllama export`: turn a checkpoint (ckpt.pt or any exported format) into another format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from zhllama.config import build_config, parse_overrides
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry

console = Console(stderr=True)


def export(
    checkpoint: Annotated[
        Path,
        typer.Argument(help="ckpt.pt, a llama2c .bin (v0/v1/v2), a .gguf or an HF directory"),
    ],
    out: Annotated[Path, typer.Argument(help="output .bin or .gguf file, or directory for hf")],
    settings: Annotated[
        list[str] | None,
        typer.Argument(help="more settings as key=value (format=, dtype=, group_size=, ...)"),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="llama2c, llama2c-v1, llama2c-int8, hf or gguf (default: gguf for OUT.gguf, "
            "else llama2c)",
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
            help="sentencepiece .model to ship with hf or gguf (gguf also takes a llama2.c "
            "tok.bin); default: the checkpoint's",
        ),
    ] = None,
    weights_only: Annotated[
        bool, typer.Option("--weights-only", help="gguf: write no tokenizer (else one is required)")
    ] = False,
    group_size: Annotated[
        int | None, typer.Option("--group-size", help="int8 group size (default: 64 or less)")
    ] = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="int8: print error per tensor kind")
    ] = True,
) -> None:
    """Export a model to llama2.c's .bin formats, a HuggingFace directory or GGUF.

    Example: [bold]zhllama export runs/15M/ckpt.pt model.bin --format llama2c[/bold];
    [bold]zhllama export runs/15M/ckpt.pt model.gguf --dtype q8_0[/bold] (for llama.cpp)
    """
    from zhllama_exporter.components import ExportConfig
    from zhllama_exporter.load import load_any

    values = parse_overrides(list(settings or []))
    name = fmt or values.pop("format", None) or ("gguf" if out.suffix == ".gguf" else "llama2c")
    if out.suffix == ".gguf" and name != "gguf":
        raise ZhllamaError(f"{out}: a .gguf name for format {name}; use --format gguf")
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
    exporter = registry.create("exporters", name, config)  # checks the settings first

    if out.exists() and checkpoint.exists() and out.resolve() == checkpoint.resolve():
        raise ZhllamaError(f"{out}: the output would overwrite the checkpoint being exported")
    with console.status(f"reading {checkpoint}"):
        loaded = load_any(checkpoint)
    if name == "hf" and config.tokenizer is None and loaded.tokenizer is not None:
        if loaded.tokenizer.is_file():
            config.tokenizer = loaded.tokenizer
            console.print(f"tokenizer from the checkpoint: {loaded.tokenizer}")
        else:
            console.print(f"[yellow]the checkpoint's tokenizer {loaded.tokenizer} is missing[/]")
    if loaded.format == "gguf":
        tok = loaded.vocab.describe() if loaded.vocab else "no tokenizer"
        console.print(f"read {checkpoint}: gguf, {loaded.dtype}; tokenizer: {tok}", soft_wrap=True)
    s = loaded.weights.shape
    if name == "gguf":
        _export_gguf(exporter, loaded, checkpoint, out)
    else:
        with console.status(f"writing {out} ({name})"):
            exporter.export_weights(loaded.weights, out)
    dtype_label = {
        "hf": config.dtype,
        "gguf": getattr(exporter, "dtype", ""),
        "llama2c-int8": "int8",
    }
    console.print(
        f"[green]wrote[/] {out} ({name}, {dtype_label.get(name, 'fp32')}) from "
        f"{loaded.format} {checkpoint}: dim {s.dim}, hidden {s.hidden_dim}, layers {s.n_layers}, "
        f"heads {s.n_heads}/{s.n_kv_heads}, vocab {s.vocab_size}, seq {s.max_seq_len}, "
        f"{'shared' if s.shared_classifier else 'separate'} classifier"
    )
    if name == "llama2c-int8" and report:
        _print_quant_report(loaded.weights, out)


def _export_gguf(exporter: Any, loaded: Any, checkpoint: Path, out: Path) -> None:
    """The GGUF export with its tokenizer: the one asked for, else the source's own."""
    from zhllama_exporter.gguf_format import find_vocab

    vocab, where = None, ""
    config = exporter.config
    if config.tokenizer is None and not config.weights_only:
        vocab, where = find_vocab(
            checkpoint, loaded.tokenizer, loaded.vocab, loaded.weights.shape.vocab_size
        )
        if vocab is None:
            raise ZhllamaError(
                f"{checkpoint}: no tokenizer found for the GGUF (tried {where}); pass "
                "--tokenizer TOK.model (or a llama2.c tok.bin), or --weights-only"
            )
        console.print(f"tokenizer: {where}", soft_wrap=True, highlight=False)
    with console.status(f"writing {out} (gguf)"):
        fallbacks = exporter.export_weights(loaded.weights, out, vocab)
    if fallbacks:
        console.print(
            f"[yellow]note:[/] {len(fallbacks)} matrices stored f16: their rows are not a "
            f"multiple of 32 long, as q8_0 needs ({', '.join(fallbacks[:3])}, ...)"
        )
    int8 = loaded.weights.int8
    if int8 is not None and exporter.dtype == "q8_0":
        console.print(
            f"q8_0 blocks keep the int8 values of {checkpoint} (groups of {int8.group_size})"
        )
    if config.weights_only:
        console.print("[yellow]note:[/] no tokenizer in the GGUF (--weights-only)")


def _print_quant_report(weights: object, out: Path) -> None:
    from zhllama_exporter.llama2c import read_group_size
    from zhllama_exporter.report import by_kind, quant_report

    gs = read_group_size(out)
    table = Table(title=f"int8 quantization error, group size {gs}")
    for col in ("tensor", "max |err|", "mean |err|", "max err / (scale/2)"):
        table.add_column(col, justify="left" if col == "tensor" else "right")
    for e in by_kind(quant_report(weights, gs)):  # type: ignore[arg-type]
        table.add_row(e.name, f"{e.max_abs:.3g}", f"{e.mean_abs:.3g}", f"{e.ratio:.3f}")
    console.print(table)
