"""Train a sentencepiece BPE tokenizer from any corpus source.

Defaults are the seed project's settings (llama2.c's `train_vocab`): BPE, byte fallback, split
digits, character coverage 1.0, whitespace-only pieces allowed, identity normalization (no NFKC),
unk/bos/eos = 0/1/2 and no pad. Every sentencepiece trainer option can be overridden.

Memory stays bounded on any corpus: stories stream from the source, are split into lines, and at
most `max_sentences` lines reach the trainer. A deterministic slice of the stories is held out
(never trained on) for the report that follows training.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sentencepiece as spm
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from zhllama.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from zhllama.contracts import Source
from zhllama.errors import ZhllamaError

from zhllama_tokenizer.binfile import export_llama2c
from zhllama_tokenizer.report import print_report, tokenizer_report

SEED_SETTINGS: dict[str, Any] = {
    "model_type": "bpe",
    "character_coverage": 1.0,
    "byte_fallback": True,
    "split_digits": True,
    "allow_whitespace_only_pieces": True,
    "normalization_rule_name": "identity",
    "unk_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "pad_id": -1,
    # Chinese paragraphs can be long in UTF-8; the default 4192 bytes would drop some silently
    "max_sentence_length": 16384,
    "shuffle_input_sentence": True,
    "minloglevel": 1,  # warnings and errors only; sentencepiece's INFO log is very chatty
}


@dataclass
class TrainOptions:
    vocab_size: int = 5000
    max_sentences: int = 1_000_000  # lines handed to the trainer, at most
    heldout_stories: int = 500  # stories kept out of training for the report
    heldout_every: int = 20  # every 20th story is held out until there are enough
    name: str | None = None  # file stem; default tok{vocab_size}
    sp: dict[str, str] = field(default_factory=dict)  # sentencepiece option overrides


@dataclass
class TrainResult:
    model: Path
    vocab: Path
    bin: Path
    report_path: Path
    report: dict[str, Any]


def _sp_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def trainer_settings(opts: TrainOptions) -> dict[str, str]:
    settings = {**SEED_SETTINGS, "num_threads": os.cpu_count() or 1}
    settings.update(opts.sp)
    settings["vocab_size"] = opts.vocab_size
    settings["input_sentence_size"] = opts.max_sentences
    return {k: _sp_value(v) for k, v in settings.items()}


class _Sampler:
    """One pass over the source: held-out stories aside, training lines to sentencepiece."""

    def __init__(self, stories: Iterator[str], opts: TrainOptions, progress: Progress) -> None:
        self.stories = stories
        self.opts = opts
        self.progress = progress
        self.task = progress.add_task("reading stories", total=None)
        self.heldout: list[str] = []
        self.n_stories = 0
        self.n_sentences = 0
        self.error: BaseException | None = None

    def sentences(self) -> Iterator[str]:
        # exceptions raised here would surface as an opaque RuntimeError from the C++ side,
        # so they are kept and re-raised after training returns
        try:
            yield from self._sentences()
        except BaseException as e:
            self.error = e

    def _sentences(self) -> Iterator[str]:
        every = self.opts.heldout_every
        for story in self.stories:
            self.n_stories += 1
            held = self.n_stories % every == 0 and len(self.heldout) < self.opts.heldout_stories
            if held:
                self.heldout.append(story)
                continue
            for line in story.splitlines():
                line = line.strip()
                if not line:
                    continue
                yield line
                self.n_sentences += 1
                if self.n_sentences % 2000 == 0:
                    self._show()
                if self.n_sentences >= self.opts.max_sentences:
                    self._show()
                    return
        self._show()

    def _show(self) -> None:
        self.progress.update(
            self.task,
            description=f"read {self.n_stories:,} stories, {self.n_sentences:,} sentences",
        )

    def fill_heldout(self) -> None:
        """Stories after the training sample were never trained on: top up the held-out set."""
        for story in self.stories:
            if len(self.heldout) >= self.opts.heldout_stories:
                break
            self.heldout.append(story)


def train_tokenizer(
    source: Source, out_dir: Path, opts: TrainOptions, console: Console | None = None
) -> TrainResult:
    """Train on `source` (a corpus source component); write model, vocab, tok.bin, report."""
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    name = opts.name or f"tok{opts.vocab_size}"
    settings = trainer_settings(opts)
    model_bytes = io.BytesIO()
    columns = [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        sampler = _Sampler(iter(source.stories()), opts, progress)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=sampler.sentences(), model_writer=model_bytes, **settings
            )
        except RuntimeError as e:
            if sampler.error is not None:
                raise sampler.error from None
            if sampler.n_sentences == 0:
                raise ZhllamaError(f"source {_name(source)!r} gave no text to train on") from None
            raise ZhllamaError(f"sentencepiece training failed: {_short(e)}") from None
        if sampler.error is not None:
            raise sampler.error
        if sampler.n_sentences == 0:
            raise ZhllamaError(f"source {_name(source)!r} gave no text to train on")
        progress.update(sampler.task, description="held-out report")
        sampler.fill_heldout()

    data = model_bytes.getvalue()
    model_path = out_dir / f"{name}.model"
    atomic_write_bytes(model_path, data)
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(data)
    vocab_path = out_dir / f"{name}.vocab"
    atomic_write_text(
        vocab_path,
        "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.vocab_size())),
    )
    bin_path = export_llama2c(model_path, out_dir / f"{name}.bin")
    report = tokenizer_report(sp, sampler.heldout)
    report["source"] = _name(source)
    report["training"] = {
        "stories_read": sampler.n_stories,
        "sentences": sampler.n_sentences,
        "settings": settings,
    }
    report_path = out_dir / f"{name}.report.json"
    atomic_write_json(report_path, report)
    print_report(report, console, title=f"{model_path} on held-out {report['source']} text")
    return TrainResult(model_path, vocab_path, bin_path, report_path, report)


def _short(e: BaseException) -> str:
    # sentencepiece messages start with "INTERNAL: src/file.cc(123) [condition] " before the text
    msg = str(e)
    msg = msg.split("] ", 1)[1] if "] " in msg else msg
    # its hints name its own flags (`--character_coverage option`); ours are sp.KEY=VALUE items
    return re.sub(r"with --(\w+) option", r"with sp.\1=…", msg)


def _name(source: Source) -> str:
    return str(getattr(source, "name", source))
