"""Write stories as jsonl shards: the input format the later stages (tokenizer, pretokenize) read.

`OUT/stories-00000.jsonl`, `OUT/stories-00001.jsonl`, … each line `{"story_zh": "…"}`. The
folder is built beside OUT and moved into place when complete (zhllama.atomic.atomic_dir), so an
interrupted export leaves either the previous folder or nothing, never a partial corpus.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from zhllama.atomic import atomic_dir, atomic_open
from zhllama.errors import ZhllamaError

SHARD_PATTERN = "stories-{:05d}.jsonl"


class _Rate(ProgressColumn):
    """Stories per second (blank until rich has measured a speed)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} stories/s" if speed else "")


@dataclass
class ExportResult:
    out: Path
    stories: int = 0
    shards: list[str] = field(default_factory=list)


def export_jsonl(
    stories: Iterable[str],
    out: Path,
    limit: int | None = None,
    shard_size: int = 100_000,
    force: bool = False,
    progress: bool = True,
) -> ExportResult:
    """Write up to `limit` stories (all when None) into jsonl shards of `shard_size` lines."""
    if shard_size < 1:
        raise ZhllamaError(f"shard size must be at least 1, not {shard_size}")
    if limit is not None and limit < 1:
        raise ZhllamaError(f"number of stories must be at least 1, not {limit}")
    if out.exists() and not out.is_dir():
        raise ZhllamaError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise ZhllamaError(f"{out}: folder is not empty; pass --force to replace it")

    result = ExportResult(out)
    bar = Progress(
        TextColumn("export"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not progress,
    )
    it = iter(stories)
    with atomic_dir(out) as tmp, bar:
        task = bar.add_task("export", total=limit)
        while limit is None or result.stories < limit:
            take = shard_size if limit is None else min(shard_size, limit - result.stories)
            chunk = islice(it, take)
            first = next(chunk, None)
            if first is None:
                break
            name = SHARD_PATTERN.format(len(result.shards))
            with atomic_open(tmp / name, "w", encoding="utf-8") as f:
                for story in chain([first], chunk):
                    f.write(json.dumps({"story_zh": story}, ensure_ascii=False) + "\n")
                    result.stories += 1
                    bar.advance(task)
            result.shards.append(name)
        if result.stories == 0:
            raise ZhllamaError("the source gave no stories; nothing was written")
    return result
