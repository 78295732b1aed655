"""The exporters behind the registry's components: one class per format (zhllama.contracts).

Each checks its config when made (before anything is read or written), writes with
`export(model, out)` and says what it wrote in an `ExportResult`, and reads a file back with
`read(path)`. `model` is a torch Transformer, a `Weights` or a `Loaded` (a file's weights with
the tokenizer its source names or holds), see weights.as_loaded.

Writes are atomic: a file goes through `atomic_open` / `atomic_path`, an HF directory through
`atomic_dir`, so a failed or killed export leaves nothing behind (and an older export in place
stays whole).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from zhllama.atomic import atomic_dir, atomic_open
from zhllama.contracts import ExportResult
from zhllama.errors import ZhllamaError

from zhllama_exporter import gguf_format, hf, llama2c
from zhllama_exporter.components import DTYPES, ExportConfig
from zhllama_exporter.quant import choose_group_size
from zhllama_exporter.weights import Loaded, Weights, as_loaded, to_model, tokenizer_candidates


class _Exporter:
    """What every format shares: the config, its checks, `read` through the format's reader."""

    format: ClassVar[str]
    reader: ClassVar[Callable[[Path], Weights]]
    holds_tokenizer: ClassVar[bool] = False
    takes_group_size: ClassVar[bool] = False

    def __init__(self, config: ExportConfig | None = None) -> None:
        self.config = config or ExportConfig()
        self.check_config()

    def check_config(self) -> None:
        """Reject settings the format cannot honour, before anything is written."""
        c = self.config
        if c.group_size is not None and not self.takes_group_size:
            raise ZhllamaError(f"group size only applies to llama2c-int8, not to {self.format}")
        if not self.holds_tokenizer:
            if c.weights_only:
                raise ZhllamaError(
                    f"--weights-only applies to hf and gguf; {self.format} writes no tokenizer "
                    "anyway"
                )
            if c.tokenizer is not None:
                raise ZhllamaError(
                    f"format {self.format} holds no tokenizer; write tok.bin with "
                    "`zhllama tokenizer export`"
                )

    def read_weights(self, path: Path) -> Weights:
        path = Path(path)
        if not path.exists():
            raise ZhllamaError(f"{path}: no such file or directory")
        return type(self).reader(path)

    def read(self, path: Path) -> torch.nn.Module:
        return to_model(self.read_weights(Path(path)), str(path))

    def export(self, model: Any, out: Path) -> ExportResult:
        raise NotImplementedError


class _Llama2cFile(_Exporter):
    """The llama2.c .bin formats: one fp32 (or int8) file, no tokenizer inside."""

    def check_config(self) -> None:
        c = self.config
        if c.dtype not in DTYPES:
            raise ZhllamaError(f"unknown dtype {c.dtype!r}; dtypes: {', '.join(DTYPES)}")
        if c.dtype != "fp32":
            int8 = self.format == "llama2c-int8"
            hint = "it is int8 by design" if int8 else "use llama2c-int8 for int8"
            raise ZhllamaError(
                f"format {self.format} stores fp32 weights, not {c.dtype} "
                f"({hint}; hf and gguf take fp16/bf16)"
            )
        super().check_config()

    def read_weights(self, path: Path) -> Weights:
        if Path(path).is_dir():
            raise ZhllamaError(f"{path}: is a directory, not a {self.format} .bin file")
        return super().read_weights(path)

    def _open(self, out: Path) -> Any:
        if out.is_dir():
            raise ZhllamaError(f"{out}: is a directory; {self.format} writes one .bin file")
        return atomic_open(out, "wb")


class Llama2cV0(_Llama2cFile):
    format = "llama2c"
    reader = staticmethod(llama2c.read_v0)
    writer = staticmethod(llama2c.write_v0)

    def export(self, model: Any, out: Path) -> ExportResult:
        out, w = Path(out), as_loaded(model).weights
        with self._open(out) as f:
            type(self).writer(w, f)
        return ExportResult(out, self.format, "fp32")


class Llama2cV1(Llama2cV0):
    format = "llama2c-v1"
    reader = staticmethod(llama2c.read_v1)
    writer = staticmethod(llama2c.write_v1)


class Llama2cInt8(_Llama2cFile):
    format = "llama2c-int8"
    reader = staticmethod(llama2c.read_v2)
    takes_group_size = True

    def export(self, model: Any, out: Path) -> ExportResult:
        out, w = Path(out), as_loaded(model).weights
        gs = choose_group_size(w.shape.dim, w.shape.hidden_dim, self.config.group_size)
        with self._open(out) as f:
            llama2c.write_v2(w, f, gs)
        return ExportResult(out, self.format, "int8", group_size=gs)


class HfExporter(_Exporter):
    """A HuggingFace LlamaForCausalLM directory, with the tokenizer files when one is known."""

    format = "hf"
    reader = staticmethod(hf.read_hf)
    holds_tokenizer = True

    def check_config(self) -> None:
        c = self.config
        if c.dtype not in DTYPES:
            raise ZhllamaError(f"unknown dtype {c.dtype!r}; dtypes: {', '.join(DTYPES)}")
        if c.tokenizer is not None and not Path(c.tokenizer).is_file():
            raise ZhllamaError(f"{c.tokenizer}: no such tokenizer .model file")
        if c.tokenizer is not None and c.weights_only:
            raise ZhllamaError("--tokenizer and --weights-only contradict each other")
        super().check_config()

    def export(self, model: Any, out: Path) -> ExportResult:
        out, loaded = Path(out), as_loaded(model)
        w = loaded.weights
        if out.exists() and not out.is_dir():
            raise ZhllamaError(f"{out}: exists and is not a directory (hf writes a directory)")
        if out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
            # atomic_dir replaces the whole directory: never a folder of other things
            raise ZhllamaError(
                f"{out}: exists and is not a model directory; refusing to replace it"
            )
        result = ExportResult(out, self.format, self.config.dtype)
        tokenizer = self._tokenizer(loaded, result)
        with atomic_dir(out) as tmp:
            hf.write_hf(w, tmp, self.config.dtype)
            if tokenizer is not None:
                write_hf_tokenizer(tokenizer, tmp, w.shape.vocab_size, w.shape.max_seq_len)
        return result

    def _tokenizer(self, loaded: Loaded, result: ExportResult) -> Path | None:
        """The tokenizer asked for, else the source's (weights.tokenizer_candidates). A file
        source without one is an error unless `weights_only`: a HF directory without tokenizer
        files fails late and obscurely in transformers. A model in memory gets the one asked
        for only."""
        if self.config.tokenizer is not None:
            return Path(self.config.tokenizer)
        if self.config.weights_only:
            result.warnings.append("no tokenizer files in the HF directory (--weights-only)")
            return None
        if loaded.path is None:
            return None
        tried = tokenizer_candidates(loaded)
        for cand in tried:
            if cand.is_file():
                result.notes.append(f"tokenizer: {cand}")
                return cand
        raise ZhllamaError(
            f"{loaded.path}: no tokenizer found for the HF export (tried "
            f"{', '.join(map(str, tried))}); pass -z TOK.model, or --weights-only for the "
            "model files alone"
        )


class GgufExporter(_Exporter):
    """GGUF for llama.cpp. The tokenizer: `config.tokenizer` (a .model or a llama2.c .bin), else
    the source GGUF's own, else the checkpoint's `.model` (as recorded, then beside it); none
    is an error unless `config.weights_only` asks for a file without one."""

    format = "gguf"
    reader = staticmethod(lambda path: gguf_format.read_gguf(path).weights)
    holds_tokenizer = True

    def check_config(self) -> None:
        self.dtype = gguf_format.gguf_dtype(self.config.dtype)
        if self.config.group_size is not None:
            raise ZhllamaError("group size only applies to llama2c-int8; gguf q8_0 blocks are 32")
        tok = self.config.tokenizer
        if tok is not None and not Path(tok).is_file():
            raise ZhllamaError(f"{tok}: no such tokenizer file")
        if tok is not None and self.config.weights_only:
            raise ZhllamaError("--tokenizer and --weights-only contradict each other")

    def export(self, model: Any, out: Path) -> ExportResult:
        out, loaded = Path(out), as_loaded(model)
        if out.is_dir():
            raise ZhllamaError(f"{out}: is a directory; gguf writes one file")
        result = ExportResult(out, self.format, self.dtype)
        vocab = self._vocab(loaded, out, result)
        fallbacks = gguf_format.write_gguf(loaded.weights, out, self.dtype, vocab, out.stem)
        if fallbacks:
            result.warnings.append(
                f"{len(fallbacks)} matrices stored f16: their rows are not a multiple of 32 "
                f"long, as q8_0 needs ({', '.join(fallbacks[:3])}, ...)"
            )
        int8 = loaded.weights.int8
        if int8 is not None and self.dtype == "q8_0":
            where = loaded.path or "the source"
            result.notes.append(
                f"q8_0 blocks keep the int8 values of {where} (groups of {int8.group_size})"
            )
        if self.config.weights_only:
            result.warnings.append("no tokenizer in the GGUF (--weights-only)")
        return result

    def _vocab(self, loaded: Loaded, out: Path, result: ExportResult) -> Any:
        size = loaded.weights.shape.vocab_size
        if self.config.weights_only:
            return None
        if self.config.tokenizer is not None:
            return gguf_format.load_vocab(Path(self.config.tokenizer), size)
        if loaded.path is None:  # a model in memory names no tokenizer
            if loaded.vocab is not None:
                return loaded.vocab
            raise ZhllamaError(
                f"{out}: no tokenizer to put in the GGUF; pass --tokenizer TOK.model (or a "
                "llama2.c tok.bin), or --weights-only for a file without one"
            )
        vocab, where = gguf_format.find_vocab(loaded, size)
        if vocab is None:
            raise ZhllamaError(
                f"{loaded.path}: no tokenizer found for the GGUF (tried {where}); pass "
                "--tokenizer TOK.model (or a llama2.c tok.bin), or --weights-only"
            )
        result.notes.append(f"tokenizer: {where}")
        return vocab


# The formats, each by its class's name for it (components.py describes them, lightly).
EXPORTERS: dict[str, type[_Exporter]] = {
    cls.format: cls for cls in (Llama2cV0, Llama2cV1, Llama2cInt8, HfExporter, GgufExporter)
}


def make_exporter(fmt: str, config: ExportConfig | None = None) -> _Exporter:
    if fmt not in EXPORTERS:
        raise ZhllamaError(f"unknown export format {fmt!r}; formats: {', '.join(EXPORTERS)}")
    return EXPORTERS[fmt](config)


def write_hf_tokenizer(model: Path, out_dir: Path, vocab_size: int, max_len: int) -> None:
    """The tokenizer stage's HF files for a sentencepiece .model, written into `out_dir`; a
    tokenizer whose vocabulary is not the model's is an error."""
    from zhllama_tokenizer.hf import export_hf

    export_hf(Path(model), out_dir, model_max_length=max_len, vocab_size=vocab_size)
