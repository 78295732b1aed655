"""What a component of each registry kind is: the one file a plug-in author reads.

Every entry point names a `zhllama.registry.Component` (name, description, factory, config
dataclass). The registry calls the factory with the config built from the user's settings, and
what the factory returns must follow the Protocol of its kind below. Stages and CLIs call only
what these Protocols declare, so any plug-in that follows them works everywhere a built-in does.

- `zhllama.sources` → `Source` (also `RandomAccessSource`, `HeldOutSource`, `VersionedSource`):
  tokenizer train, `zhllama data …`
- `zhllama.tokenizers` → `Tokenizer`: pretokenize (each worker process makes its own)
- `zhllama.presets` → `Preset`: `zhllama train size=NAME`
- `zhllama.exporters` → `Exporter`: `zhllama export`, the trainer's model.bin
- `zhllama.engines` → `Engine`: `zhllama sample --engine NAME`

This module imports nothing heavy (no torch, numpy or typer): contracts cost nothing to load.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# -- zhllama.sources ---------------------------------------------------------------------------


@runtime_checkable
class Source(Protocol):
    """A corpus: `stories()` yields story texts, in the same order on every call."""

    name: str

    def stories(self) -> Iterator[str]: ...


@runtime_checkable
class RandomAccessSource(Source, Protocol):
    """A source that can hand out story `i` of `len(source)` directly. Pretokenize's worker
    processes then read their own stories instead of having the parent send them the texts;
    `story(i)` must equal the i-th item of `stories()`."""

    def __len__(self) -> int: ...

    def story(self, i: int) -> str: ...


@runtime_checkable
class HeldOutSource(Source, Protocol):
    """A source that can set its own validation split aside (a file the corpus holds out):
    `val_stories()` is how many of the first stories of `stories()` are validation data, or
    None when it holds none out. Pretokenize uses it unless the user sets `val_stories`."""

    def val_stories(self) -> int | None: ...


@runtime_checkable
class VersionedSource(Source, Protocol):
    """A source that can say exactly which version of its corpus it reads (a hub commit, say):
    `revision()` is that version, or None when it cannot tell. Pretokenize records it in the
    manifest as `source_revision` and refuses to resume shards made from another version."""

    def revision(self) -> str | None: ...


# -- zhllama.tokenizers ------------------------------------------------------------------------


@runtime_checkable
class Tokenizer(Protocol):
    """A trained tokenizer loaded from a file; the factory's config has a `model: Path` field
    (the registry is asked with `model=PATH`). Ids carry no BOS/EOS: pretokenize adds them.
    `sha256` identifies the tokenizer file: manifests and checkpoints record it, and a stage
    refuses data made with another tokenizer."""

    name: str
    vocab_size: int
    bos_id: int
    eos_id: int
    sha256: str

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Iterable[str]) -> list[list[int]]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


# -- zhllama.presets ---------------------------------------------------------------------------


@runtime_checkable
class Preset(Protocol):
    """A model and training size: `settings` are TrainConfig values (dim, n_layers, n_heads,
    n_kv_heads, max_seq_len, batch_size, max_iters, learning_rate, …; see zhllama-trainer's
    README). Anything not given keeps TrainConfig's default; the user's settings override it.
    The factory takes no config."""

    name: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class PresetSettings:
    """The plain `Preset`: a name and its TrainConfig values (what a preset factory returns)."""

    name: str
    settings: Mapping[str, Any]


# -- zhllama.exporters -------------------------------------------------------------------------


@dataclass
class ExportResult:
    """What an export wrote, for the user: `label` says how the weights are stored (fp32, bf16,
    int8, q8_0), `notes` are lines worth showing (which tokenizer went in), `warnings` what the
    user may not expect (a missing tokenizer, fallbacks), and `group_size` the int8 group size
    when the format has one."""

    path: Path
    format: str
    label: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    group_size: int | None = None


@runtime_checkable
class Exporter(Protocol):
    """One export format. `export(model, out)` writes `model` to `out` atomically (nothing half
    written on failure) and says what it wrote; `read(path)` loads such a file back as a torch
    model (zhllama-trainer's `Transformer`).

    `model` is a torch `Transformer`, or what an exporter's reader gives for a file
    (zhllama_exporter.load.Loaded: the weights, the tokenizer the source names or holds); the
    factory's config carries the format's settings (dtype, group size, tokenizer,
    weights-only)."""

    format: str

    def export(self, model: Any, out: Path) -> ExportResult: ...

    def read(self, path: Path) -> Any: ...


# -- zhllama.engines ---------------------------------------------------------------------------


@dataclass
class EngineConfig:
    """What `zhllama sample` gives an engine factory."""

    checkpoint: Path
    tokenizer: Path | None = None
    threads: int | None = None
    device: str = "cpu"


@dataclass
class SampleSettings:
    """One generation, with run.c's meanings (FORMATS.md §3): `steps` counts positions."""

    prompt: str = ""
    steps: int = 256
    temperature: float = 1.0
    top_p: float = 0.9
    seed: int | None = None
    stop_at_eos: bool = True


@runtime_checkable
class Engine(Protocol):
    def stream(self, settings: SampleSettings) -> Iterator[str]:
        """Text pieces of the story (prompt first), each made of whole UTF-8 characters."""
        ...
