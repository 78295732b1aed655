"""Stream stories out of files: .jsonl, .json, .txt/.md, .parquet, and .gz/.tar(.gz) of those.

Everything is read as a stream (a JSON array is decoded element by element, a tar archive member
by member), so a corpus larger than memory works. A record that cannot be used (bad JSON, not
UTF-8, no text field) is *malformed*: `ReadLog` counts it and warns on stderr with the file and
line number, or raises `ZhllamaError` in strict mode. Problems with the input as a whole (a
missing folder, an unreadable file) are always errors.

How text files become stories (`txt_split`):
  paragraph  stories are separated by blank lines; the lines of one story are kept, joined by
             newlines (the default: the usual "one story per paragraph" dump)
  line       every non-empty line is a story
  file       the whole file is one story
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from zhllama.errors import ZhllamaError

TEXT_KEYS = ("story_zh", "story", "text", "content")
TxtSplit = Literal["paragraph", "line", "file"]

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
TEXT_SUFFIXES = (".txt", ".md")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
DATA_SUFFIXES = (*JSON_SUFFIXES, ".parquet", *ARCHIVE_SUFFIXES)
ALL_SUFFIXES = (*DATA_SUFFIXES, *TEXT_SUFFIXES)


class ReadLog:
    """Counts malformed records; warns about the first `max_shown` on stderr (none when it is
    negative: a pass that only counts stories)."""

    def __init__(self, source: str, strict: bool = False, max_shown: int = 20) -> None:
        self.source = source
        self.strict = strict
        self.max_shown = max_shown
        self.malformed = 0
        self.stories = 0

    def bad(self, where: str, line: int | None, reason: str) -> None:
        place = f"{where}:{line}" if line is not None else where
        if self.strict:
            raise ZhllamaError(f"{place}: {reason} (strict mode stops at the first bad record)")
        self.malformed += 1
        if self.malformed <= self.max_shown:
            print(f"warning: {place}: {reason}; skipped", file=sys.stderr)
        elif self.malformed == self.max_shown + 1 and self.max_shown >= 0:
            print(f"warning: {self.source}: more malformed records, not shown", file=sys.stderr)

    def finish(self) -> None:
        if self.malformed:
            print(
                f"warning: {self.source}: skipped {self.malformed} malformed record(s), "
                f"read {self.stories} stories (strict=true makes this an error)",
                file=sys.stderr,
            )


@dataclass
class ReadOptions:
    text_key: str | None = None  # None: the TEXT_KEYS entry most of a file's first records have
    txt_split: TxtSplit = "paragraph"


# How many records of a file decide its text key (see `_texts`).
KEY_SAMPLE = 64


def _detect_key(records: list[Any]) -> tuple[str | None, int]:
    """The TEXT_KEYS entry held by the most of `records` (ties: the earlier in TEXT_KEYS), and
    how many hold it; (None, 0) when none holds any."""
    objects = [r for r in records if isinstance(r, dict)]
    counts = {k: sum(1 for r in objects if isinstance(r.get(k), str)) for k in TEXT_KEYS}
    best = max(TEXT_KEYS, key=lambda k: (counts[k], -TEXT_KEYS.index(k)))
    return (best, counts[best]) if counts[best] else (None, 0)


def _texts(
    records: Iterable[tuple[int, Any]], where: str, opts: ReadOptions, log: ReadLog
) -> Iterator[str]:
    """The stories of one file's (line, record) pairs.

    Without a configured `text_key` the key is decided over the file's first `KEY_SAMPLE`
    records, not the first alone: one odd first record must not make every record after it
    malformed. A decision that not every sampled record agrees with is reported on stderr."""
    records = iter(records)
    key = opts.text_key
    if key is None:
        head = list(itertools.islice(records, KEY_SAMPLE))
        key, held = _detect_key([r for _, r in head])
        if key is not None and held < len(head):
            print(
                f"note: {where}: text key {key!r}, held by {held} of the first {len(head)} "
                f"records (set text_key to choose another)",
                file=sys.stderr,
            )
        records = itertools.chain(head, records)
    for line, record in records:
        if not isinstance(record, dict):
            log.bad(where, line, f"expected a JSON object, got {type(record).__name__}")
            continue
        # no key found in the sample: each record may still hold one of the candidates
        k = key or next((c for c in TEXT_KEYS if c in record), None)
        if k is None:
            keys = ", ".join(list(record)[:8]) or "none"
            log.bad(where, line, f"no text key (looked for {', '.join(TEXT_KEYS)}; has {keys})")
            continue
        value = record.get(k)
        if value is None:
            log.bad(where, line, f"no {k!r} key")
        elif not isinstance(value, str):
            log.bad(where, line, f"{k!r} is a {type(value).__name__}, not a string")
        elif value.strip():
            yield value.strip()


def _decode(raw: bytes, first: bool) -> str:
    if first and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return raw.decode("utf-8")


def iter_jsonl(
    lines: Iterable[bytes], where: str, opts: ReadOptions, log: ReadLog
) -> Iterator[str]:
    def records() -> Iterator[tuple[int, Any]]:
        for lineno, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                yield lineno, json.loads(_decode(raw, lineno == 1))
            except UnicodeDecodeError:
                log.bad(where, lineno, "not valid UTF-8")
            except json.JSONDecodeError as e:
                log.bad(where, lineno, f"bad JSON ({e.msg})")

    yield from _texts(records(), where, opts, log)


def _json_values(f: IO[bytes], where: str, log: ReadLog) -> Iterator[tuple[int, Any]]:
    """(line, value) for each element of a top-level JSON array, or the one top-level value."""
    reader = io.TextIOWrapper(f, encoding="utf-8-sig")
    decoder = json.JSONDecoder()
    buf, pos, line, eof = "", 0, 1, False

    def fill() -> None:
        nonlocal buf, pos, eof
        chunk = reader.read(1 << 20)
        eof = not chunk
        buf, pos = buf[pos:] + chunk, 0

    def skip_ws() -> str:
        """The next non-blank character ('' at the end of the file)."""
        nonlocal pos, line
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                line += buf[pos] == "\n"
                pos += 1
            if pos < len(buf) or eof:
                return buf[pos] if pos < len(buf) else ""
            fill()

    def value() -> Any:
        nonlocal pos, line
        while True:
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as e:
                if eof:
                    raise ValueError(f"bad JSON ({e.msg})") from None
                fill()  # the value may continue in the next chunk
                continue
            if end == len(buf) and not eof:  # a number could continue in the next chunk
                fill()
                continue
            line += buf.count("\n", pos, end)
            pos = end
            return obj

    try:
        first = skip_ws()
        if first != "[":
            if first:
                yield line, value()
            return
        pos += 1
        if skip_ws() == "]":
            return
        while True:
            start = line
            yield start, value()
            sep = skip_ws()
            if sep == "]":
                return
            if sep != ",":
                raise ValueError(f"expected ',' or ']' in the array, found {sep or 'the end'!r}")
            pos += 1
            skip_ws()
    except UnicodeDecodeError:
        log.bad(where, line, "not valid UTF-8; the rest of the file is skipped")
    except ValueError as e:
        log.bad(where, line, f"{e}; the rest of the file is skipped")


def iter_json(f: IO[bytes], where: str, opts: ReadOptions, log: ReadLog) -> Iterator[str]:
    yield from _texts(_json_values(f, where, log), where, opts, log)


def iter_text(lines: Iterable[bytes], where: str, opts: ReadOptions, log: ReadLog) -> Iterator[str]:
    block: list[str] = []
    bad_block = False
    for lineno, raw in enumerate(lines, 1):
        try:
            text = _decode(raw, lineno == 1).rstrip()
        except UnicodeDecodeError:
            log.bad(where, lineno, "not valid UTF-8")
            bad_block = True
            continue
        if opts.txt_split == "line":
            if text.strip():
                yield text.strip()
        elif opts.txt_split == "paragraph" and not text.strip():
            if block and not bad_block:
                yield "\n".join(block).strip()
            block, bad_block = [], False
        else:
            block.append(text)
    if block and not bad_block:
        story = "\n".join(block).strip()
        if story:
            yield story


def iter_parquet(f: IO[bytes], where: str, opts: ReadOptions, log: ReadLog) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ZhllamaError(
            f"{where}: reading .parquet files needs pyarrow (pip install pyarrow)"
        ) from None
    try:
        pf = pq.ParquetFile(f)
    except Exception as e:  # pyarrow raises its own error types for a damaged file
        raise ZhllamaError(f"{where}: not a readable parquet file ({e})") from None
    names = pf.schema_arrow.names
    key = opts.text_key or next((k for k in TEXT_KEYS if k in names), None)
    if key not in names:
        raise ZhllamaError(f"{where}: no column {key or ' or '.join(TEXT_KEYS)}; has {names}")
    row = 0
    for batch in pf.iter_batches(columns=[key], batch_size=4096):
        for value in batch.column(0).to_pylist():
            row += 1
            if isinstance(value, str):
                if value.strip():
                    yield value.strip()
            elif value is not None:
                log.bad(where, row, f"{key!r} is a {type(value).__name__}, not a string")


def _suffix(name: str) -> str:
    low = name.lower()
    for s in (".tar.gz", *ALL_SUFFIXES, ".gz"):
        if low.endswith(s):
            return s
    return ""


# Which data files (by base name, inside archives too, without a .gz) to read; None: all.
Keep = Callable[[str], bool] | None


def read_stream(
    name: str, f: IO[bytes], where: str, opts: ReadOptions, log: ReadLog, keep: Keep = None
) -> Iterator[str]:
    """The stories of one file-like object, by the type its `name` ends with."""
    suffix = _suffix(name)
    if keep is not None and suffix not in ARCHIVE_SUFFIXES and suffix != ".gz" and not keep(name):
        return
    if suffix in (".jsonl", ".ndjson"):
        yield from iter_jsonl(f, where, opts, log)
    elif suffix == ".json":
        yield from iter_json(f, where, opts, log)
    elif suffix in TEXT_SUFFIXES:
        yield from iter_text(f, where, opts, log)
    elif suffix == ".parquet":
        yield from iter_parquet(f if f.seekable() else io.BytesIO(f.read()), where, opts, log)
    elif suffix in ARCHIVE_SUFFIXES:
        yield from _read_tar(f, where, opts, log, keep)
    elif suffix == ".gz":
        with gzip.open(f) as inner:
            yield from read_stream(name[:-3], inner, where, opts, log, keep)  # type: ignore[arg-type]
    else:
        raise ZhllamaError(f"{where}: unsupported file type (read: {', '.join(ALL_SUFFIXES)})")


def _read_tar(
    f: IO[bytes], where: str, opts: ReadOptions, log: ReadLog, keep: Keep
) -> Iterator[str]:
    try:
        # "r|*": a forward-only stream, so a large .tar.gz is never unpacked to disk.
        with tarfile.open(fileobj=f, mode="r|*") as tar:
            for member in tar:
                base = os.path.basename(member.name)
                if not member.isfile() or base.startswith(".") or not _suffix(base):
                    continue
                inner = tar.extractfile(member)
                if inner is not None:
                    yield from read_stream(base, inner, f"{where}!{member.name}", opts, log, keep)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile) as e:
        raise ZhllamaError(f"{where}: damaged archive ({e})") from None


def read_file(path: Path, opts: ReadOptions, log: ReadLog, keep: Keep = None) -> Iterator[str]:
    try:
        with open(path, "rb") as f:
            yield from read_stream(path.name, f, str(path), opts, log, keep)
    except (gzip.BadGzipFile, EOFError) as e:
        raise ZhllamaError(f"{path}: damaged gzip file ({e})") from None
    except OSError as e:
        raise ZhllamaError(f"{path}: cannot read ({e.strerror or e})") from None


def list_files(root: Path, suffixes: tuple[str, ...], skip: tuple[str, ...] = ()) -> list[Path]:
    """Files under `root` with one of `suffixes`, in a stable order; hidden ones are skipped."""
    if not root.exists():
        raise ZhllamaError(f"{root}: no such file or folder")
    if root.is_file():
        if _suffix(root.name) not in (*suffixes, ".gz"):
            raise ZhllamaError(f"{root}: unsupported file type (read: {', '.join(suffixes)})")
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            suffix = _suffix(name)
            if name.startswith(".") or name in skip or not suffix:
                continue
            if suffix == ".gz" and _suffix(name[:-3]) not in suffixes:
                continue
            if suffix in suffixes or suffix == ".gz":
                found.append(Path(dirpath) / name)
    if not found:
        raise ZhllamaError(f"{root}: no data files in this folder (read: {', '.join(suffixes)})")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
