"""Pretokenize a corpus source into shards: `zhllama data pretokenize`.

The parent process reads stories from the source and cuts them into fixed-size chunks; worker
processes (each with its own tokenizer, asked from the registry) encode whole chunks in one
sentencepiece call and send back numpy arrays; the parent writes shards in story order. So the
output does not depend on the number of workers, and a rerun can skip what is already done:

- Story i belongs to the validation split when `i < val_stories`, or, with a fraction f, when
  floor((i+1)·f) > floor(i·f) (every 1/f-th story). Everything else is training data.
- A shard is cut at a chunk boundary once it holds at least `shard_tokens` tokens. After each
  shard the manifest records, per split, how many source stories its shards cover; a rerun
  starts there (for each split) and reproduces the same remaining shards.

Workers are started with `spawn` (safe next to rich's refresh thread), so a script that calls
`pretokenize` with workers > 1 needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from zhllama.atomic import atomic_write_json
from zhllama.contracts import (
    HeldOutSource,
    RandomAccessSource,
    Source,
    Tokenizer,
    VersionedSource,
)
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry

if TYPE_CHECKING:
    from rich.console import Console

from zhllama_data.shards import (
    FORMAT,
    MANIFEST,
    SPLITS,
    VERSION,
    dtype_for_vocab,
    read_manifest,
    write_shard,
)


@dataclass
class PretokenizeOptions:
    eos: bool = True  # False gives the original llama2.c layout: BOS + tokens only
    val_stories: int | None = None  # the first N stories are validation data
    val_fraction: float = 0.01  # else every 1/f-th story (used when val_stories is None)
    shard_tokens: int = 1 << 26  # a shard is cut once it holds this many tokens
    chunk_stories: int = 1024  # stories per worker task; shards are cut at chunk boundaries
    workers: int = 1  # encoding processes; 1 encodes in this process
    tokenizer_component: str = "sentencepiece"
    source_settings: dict[str, Any] = field(default_factory=dict)

    def layout(self) -> dict[str, Any]:
        """The settings that decide the shards' contents; a rerun must match them."""
        d = asdict(self)
        d.pop("workers")
        return d


@dataclass
class Chunk:
    index: int  # chunk number; chunk k holds stories k*chunk_stories ...
    splits: np.ndarray  # per kept story: 0 train, 1 val
    covered: int  # stories of the source in this chunk, kept or not
    texts: list[str] | None = None  # the kept stories' texts, or None when the worker
    numbers: np.ndarray | None = None  # reads them itself: the kept stories' numbers


@dataclass
class Encoded:
    index: int
    ids: dict[str, np.ndarray]  # split → flat ids, stories back to back
    stories: dict[str, int]
    chars: int
    utf8_bytes: int
    covered: int


def is_val(i: np.ndarray, opts: PretokenizeOptions) -> np.ndarray:
    if opts.val_stories is not None:
        return i < opts.val_stories
    f = opts.val_fraction
    return np.floor((i + 1) * f) > np.floor(i * f)


# -- workers ----------------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(component: str, model: str, eos: bool, source: str, settings: dict) -> None:
    # each worker asks the registry for its own tokenizer and source: nothing heavy is pickled
    registry = get_registry()
    _worker["tok"] = registry.create("tokenizers", component, model=Path(model))
    _worker["source"] = registry.create("sources", source, **settings)
    _worker["eos"] = eos


def layout_stories(ids: list[list[int]], bos: int, eos: int | None, dtype: str) -> np.ndarray:
    """Flatten encoded stories into BOS + tokens (+ EOS) back to back, vectorised."""
    n = len(ids)
    extra = 2 if eos is not None else 1
    lens = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    out = np.empty(int(lens.sum()) + extra * n, dtype=dtype)
    starts = np.cumsum(lens + extra) - (lens + extra)
    out[starts] = bos
    if eos is not None:
        out[starts + lens + 1] = eos
    flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lens.sum()))
    story_of_token = np.repeat(np.arange(n, dtype=np.int64), lens)
    out[np.arange(len(flat)) + story_of_token * extra + 1] = flat
    return out


def encode_chunk(
    chunk: Chunk,
    tok: Tokenizer | None = None,
    source: Source | None = None,
    eos: bool | None = None,
) -> Encoded:
    tok = tok or _worker["tok"]
    eos = _worker["eos"] if eos is None else eos
    if chunk.texts is not None:
        all_texts = chunk.texts
    else:
        # numbers instead of texts: _chunks saw a RandomAccessSource
        reader: RandomAccessSource = source or _worker["source"]  # type: ignore[assignment]
        all_texts = [reader.story(i) for i in chunk.numbers.tolist()]  # type: ignore[union-attr]
    dtype = dtype_for_vocab(tok.vocab_size)
    ids, counts = {}, {}
    for k, split in enumerate(SPLITS):
        texts = [t for t, s in zip(all_texts, chunk.splits.tolist(), strict=True) if s == k]
        encoded = tok.encode_batch(texts) if texts else []
        ids[split] = layout_stories(encoded, tok.bos_id, tok.eos_id if eos else None, dtype)
        counts[split] = len(texts)
    chars = sum(map(len, all_texts))
    nbytes = sum(len(t.encode()) for t in all_texts)
    return Encoded(chunk.index, ids, counts, chars, nbytes, chunk.covered)


# -- the parent ------------------------------------------------------------------------------


def _rate_column() -> Any:
    # rich is imported here, not at module level: worker processes import this module and
    # should start fast
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            elapsed = task.elapsed or 1e-9
            stories, tokens = task.fields.get("stories", 0), task.fields.get("tokens", 0)
            return Text(
                f"{stories:,} stories {stories / elapsed:,.0f}/s · "
                f"{tokens:,} tokens {tokens / elapsed / 1e6:,.2f}M/s",
                style="progress.data.speed",
            )

    return RateColumn()


class _ShardWriter:
    """Accumulates one split's ids and cuts shards; keeps the manifest's record of them."""

    def __init__(self, out: Path, split: str, dtype: str, shard_tokens: int, state: dict):
        self.out, self.split, self.dtype, self.shard_tokens = out, split, dtype, shard_tokens
        self.files: list[str] = list(state.get("files", []))
        self.done: int = int(state.get("stories_done", 0))  # source stories covered by shards
        self.stories: int = int(state.get("stories", 0))
        self.tokens: int = int(state.get("tokens", 0))
        self.pending: list[np.ndarray] = []
        self.pending_tokens = 0
        self.pending_stories = 0

    def add(self, ids: np.ndarray, stories: int) -> None:
        self.pending.append(ids)
        self.pending_tokens += len(ids)
        self.pending_stories += stories

    def after_chunk(self, covered: int, final: bool = False) -> bool:
        """Write a shard once enough tokens wait (or at the end); `covered` = stories read."""
        if not self.pending_tokens:
            self.done = max(self.done, covered)  # nothing of this split is waiting
            return False
        if self.pending_tokens < self.shard_tokens and not final:
            return False
        name = f"{self.split}_{len(self.files):05d}.bin"
        write_shard(self.out / name, np.concatenate(self.pending), self.dtype)
        self.files.append(name)
        self.stories += self.pending_stories
        self.tokens += self.pending_tokens
        self.done = covered
        self.pending, self.pending_tokens, self.pending_stories = [], 0, 0
        return True

    def state(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "stories_done": self.done,
            "stories": self.stories,
            "tokens": self.tokens,
        }


def _manifest(
    tok: Tokenizer,
    model: Path,
    out: Path,
    source: str,
    revision: str | None,
    opts: PretokenizeOptions,
    writers: dict,
    complete: bool,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype_for_vocab(tok.vocab_size),
        "vocab_size": tok.vocab_size,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id if opts.eos else None,
        "tokenizer_sha256": tok.sha256,
        # absolute, and relative to the shard folder: the data can be used from any working
        # folder, and still finds its tokenizer when both move together (checked by sha256)
        "tokenizer": str(Path(model).resolve()),
        "tokenizer_relative": os.path.relpath(Path(model).resolve(), Path(out).resolve()),
        "source": source,
        "source_revision": revision,
        "shards": {s: list(w.files) for s, w in writers.items()},
        "counts": {s: {"stories": w.stories, "tokens": w.tokens} for s, w in writers.items()},
        "complete": complete,
        "settings": opts.layout(),
        "progress": {s: w.state() for s, w in writers.items()},
    }


def _resume_state(
    out: Path, tok: Tokenizer, source: str, revision: str | None, opts: PretokenizeOptions
) -> dict | None:
    if not (out / MANIFEST).exists():
        return None
    old = read_manifest(out)
    where = out / MANIFEST
    if old.get("tokenizer_sha256") != tok.sha256:
        raise ZhllamaError(
            f"{where}: these shards were made with another tokenizer "
            f"(sha256 {str(old.get('tokenizer_sha256'))[:12]}…, now {tok.sha256[:12]}…); "
            "use a new --out folder or delete this one"
        )
    if old.get("source") != source or old.get("settings") != opts.layout():
        raise ZhllamaError(
            f"{where}: these shards were made from {old.get('source')!r} with other settings "
            f"({old.get('settings')}); use a new --out folder or delete this one"
        )
    # (a manifest of an earlier release has no source_revision: nothing to compare)
    if "source_revision" in old and old["source_revision"] != revision:
        raise ZhllamaError(
            f"{where}: these shards were made from revision {old.get('source_revision')} of "
            f"{source!r}, which now reads {revision}; finishing them would mix two versions of "
            "the corpus: use a new --out folder or delete this one"
        )
    return old


def _chunks(source: Source, opts: PretokenizeOptions, skip: dict[str, int]) -> Iterator[Chunk]:
    """Chunks of the story stream, leaving out stories already in written shards. A
    random-access source's chunks carry story numbers: the workers read the texts themselves."""
    start_chunk = min(skip.values()) // opts.chunk_stories
    size = opts.chunk_stories
    if isinstance(source, RandomAccessSource):
        n = len(source)
        for index in range(start_chunk, -(-n // size)):
            yield _make_chunk(index, min(size, n - index * size), None, opts, skip)
        return
    index, buf = 0, []
    for story in source.stories():
        buf.append(story)
        if len(buf) == size:
            if index >= start_chunk:
                yield _make_chunk(index, len(buf), buf, opts, skip)
            index, buf = index + 1, []
    if buf and index >= start_chunk:
        yield _make_chunk(index, len(buf), buf, opts, skip)


def _make_chunk(
    index: int, count: int, buf: list[str] | None, opts: PretokenizeOptions, skip: dict
) -> Chunk:
    i = np.arange(index * opts.chunk_stories, index * opts.chunk_stories + count)
    splits = is_val(i, opts).astype(np.int8)
    # a split whose shards already cover story i does not need it again
    keep = np.where(splits == 1, i >= skip["val"], i >= skip["train"])
    if buf is None:
        return Chunk(index, splits[keep], count, numbers=i[keep])
    texts = [t for t, k in zip(buf, keep.tolist(), strict=True) if k]
    return Chunk(index, splits[keep], count, texts=texts)


def pretokenize(
    source_name: str,
    model: Path,
    out: Path,
    opts: PretokenizeOptions,
    console: Console | None = None,
) -> dict[str, Any]:
    """Pretokenize `source_name` with tokenizer `model` into `out`; returns the manifest."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    console = console or Console(stderr=True)
    registry = get_registry()
    model = Path(model)
    tok: Tokenizer = registry.create("tokenizers", opts.tokenizer_component, model=model)
    source: Source = registry.create("sources", source_name, **opts.source_settings)
    revision = source.revision() if isinstance(source, VersionedSource) else None
    if opts.val_stories is None and isinstance(source, HeldOutSource):
        # the source's own validation split (recorded in the manifest's settings like a user's)
        held_out = source.val_stories()
        if held_out is not None:
            opts = replace(opts, val_stories=held_out)
    out = Path(out)
    old = _resume_state(out, tok, source_name, revision, opts)
    if old is not None and old.get("complete"):
        console.print(f"{out}: already complete, nothing to do")
        return old
    out.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for_vocab(tok.vocab_size)
    progress_state = (old or {}).get("progress", {})
    writers = {
        s: _ShardWriter(out, s, dtype, opts.shard_tokens, progress_state.get(s, {})) for s in SPLITS
    }
    skip = {s: w.done for s, w in writers.items()}
    if any(skip.values()):
        console.print(f"resuming: {', '.join(f'{s} from story {n:,}' for s, n in skip.items())}")

    def save(complete: bool) -> dict[str, Any]:
        manifest = _manifest(tok, model, out, source_name, revision, opts, writers, complete)
        atomic_write_json(out / MANIFEST, manifest)
        return manifest

    chunks = _chunks(source, opts, skip)
    columns = [SpinnerColumn(), TextColumn("pretokenizing {task.description}"), _rate_column()]
    stats = {"chars": 0, "bytes": 0, "stories": 0, "tokens": 0}
    t0 = time.perf_counter()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(source_name, total=None, stories=0, tokens=0)
        covered = 0
        for enc in _encode_all(chunks, model, source_name, source, opts, tok):
            covered = enc.index * opts.chunk_stories + enc.covered
            for split in SPLITS:
                writers[split].add(enc.ids[split], enc.stories[split])
            stats["chars"] += enc.chars
            stats["bytes"] += enc.utf8_bytes
            stats["stories"] += sum(enc.stories.values())
            stats["tokens"] += sum(len(a) for a in enc.ids.values())
            progress.update(task, stories=stats["stories"], tokens=stats["tokens"])
            if any([w.after_chunk(covered) for w in writers.values()]):
                save(False)
        for w in writers.values():
            w.after_chunk(covered, final=True)
    if not any(w.stories for w in writers.values()):
        # an empty or wholly malformed source: shards nobody can train on are no result
        with contextlib.suppress(OSError):
            out.rmdir()  # only if we left it empty
        raise ZhllamaError(f"source {source_name!r} gave no stories; nothing written to {out}")
    manifest = save(True)
    seconds = time.perf_counter() - t0
    manifest_stats = {**stats, "seconds": seconds}
    c = manifest["counts"]
    console.print(
        f"{out}: train {c['train']['stories']:,} stories / {c['train']['tokens']:,} tokens in "
        f"{len(manifest['shards']['train'])} shards, val {c['val']['stories']:,} / "
        f"{c['val']['tokens']:,} ({seconds:.1f} s, "
        f"{stats['bytes'] / 1e6 / max(seconds, 1e-9):.1f} MB/s)"
    )
    manifest["_run"] = manifest_stats  # not saved: figures of this run for callers (bench)
    return manifest


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl-C reaches the whole process group: the parent stops the pool, while workers would
    only print a traceback each, so they are started with SIGINT ignored."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _encode_all(
    chunks: Iterator[Chunk],
    model: Path,
    source_name: str,
    source: Source,
    opts: PretokenizeOptions,
    tok: Tokenizer,
) -> Iterator[Encoded]:
    """Encode chunks in order; with workers, keep a bounded number of tasks in flight."""
    if opts.workers <= 1:
        for chunk in chunks:
            yield encode_chunk(chunk, tok, source, opts.eos)
        return
    # spawn, not fork: the parent runs rich's refresh thread, and forking a threaded process
    # can deadlock; the workers' start-up cost is amortised over big chunks
    ctx = mp.get_context("spawn")
    init = (opts.tokenizer_component, str(model), opts.eos, source_name, opts.source_settings)
    with _sigint_ignored():  # the workers are born ignoring it (SIG_IGN survives exec)
        pool = ctx.Pool(opts.workers, initializer=_init_worker, initargs=init)
    with pool:
        inflight: deque = deque()
        limit = 2 * opts.workers  # backpressure: never read the whole corpus ahead
        for chunk in chunks:
            inflight.append(pool.apply_async(encode_chunk, (chunk,)))
            if len(inflight) >= limit:
                yield inflight.popleft().get()
        while inflight:
            yield inflight.popleft().get()


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def parse_fraction(value: float) -> float:
    if not 0 <= value < 1 or math.isnan(value):
        raise ZhllamaError(f"--val-fraction must be in [0, 1), not {value}")
    return value
