"""`jsonl`: stories from your own files, a folder (searched recursively) or a single file.

Reads .jsonl/.ndjson (one JSON object per line), .json (an array of objects, or one object),
.txt/.md (split into stories by `txt_split`: blank-line separated paragraphs by default, or one
per line, or one per file), .parquet (when pyarrow is installed), and .gz/.tar/.tar.gz files of
those. Files are read in sorted path order; hidden files and folders are skipped. The text key is
`text_key`, or else the first of story_zh, story, text, content that a file's first record has.
Malformed records are skipped with a warning naming the file and line; `strict=true` makes the
first one an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zhllama.errors import ZhllamaError

from zhllama_data.readers import ALL_SUFFIXES, ReadLog, ReadOptions, TxtSplit, list_files, read_file


@dataclass
class JsonlConfig:
    path: Path | None = None
    text_key: str | None = None
    strict: bool = False
    txt_split: TxtSplit = "paragraph"


class JsonlSource:
    name = "jsonl"

    def __init__(self, config: JsonlConfig) -> None:
        if config.path is None:
            raise ZhllamaError(
                "the jsonl source needs a path: the setting path=FOLDER_OR_FILE "
                "(.jsonl, .json, .txt, .md files)"
            )
        self.config = config
        self.log = ReadLog(f"jsonl {config.path}", strict=config.strict)

    def files(self) -> list[Path]:
        return list_files(Path(self.config.path).expanduser(), ALL_SUFFIXES)  # type: ignore[arg-type]

    def stories(self) -> Iterator[str]:
        opts = ReadOptions(text_key=self.config.text_key, txt_split=self.config.txt_split)
        self.log = log = ReadLog(f"jsonl {self.config.path}", strict=self.config.strict)
        for path in self.files():
            for story in read_file(path, opts, log):
                log.stories += 1
                yield story
        log.finish()
