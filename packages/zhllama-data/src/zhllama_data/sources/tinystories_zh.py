"""`tinystories-zh`: the TinyStoriesChinese corpus (`adam89/TinyStoriesChinese` on the hub).

The dataset repo is fetched with huggingface_hub's `snapshot_download` into its usual cache (or
`cache_dir`), with its progress bars; an interrupted download resumes where it stopped, and a
finished one is not fetched again. `revision` pins a branch, tag or commit; whatever was asked
for, `revision()` says which commit was read (the hub cache keeps each commit's files in
`snapshots/<commit>/`), and pretokenize records it in the manifest. Only data files are
fetched (.jsonl/.json/.parquet and .tar.gz archives of them); the stories are streamed straight
out of them (an archive is never unpacked) from the `story_zh` field.

Offline: with `local_dir=FOLDER` the source reads a folder laid out like the hub repo (e.g. made
with `hf download adam89/TinyStoriesChinese --repo-type dataset --local-dir FOLDER` on a machine
with network) and never touches the network; `offline=true` or HF_HUB_OFFLINE=1 uses only what
the cache already holds.

Validation: `val_file=data00_zh.jsonl` holds that file out as the validation split, as the
original chinese-llama2.c does: its stories come first and `val_stories()` says how many there
are, which pretokenize takes as its validation split (zhllama.contracts.HeldOutSource).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zhllama.errors import ZhllamaError

from zhllama_data.readers import (
    DATA_SUFFIXES,
    Keep,
    ReadLog,
    ReadOptions,
    list_files,
    read_file,
)

REPO_ID = "adam89/TinyStoriesChinese"
# What is fetched: data only, not the README or images.
ALLOW_PATTERNS = [f"*{s}" for s in DATA_SUFFIXES] + ["*.jsonl.gz", "*.json.gz"]
# Hub metadata files that are JSON but not stories.
METADATA_FILES = ("dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json")
# huggingface_hub's cache holds a commit's files in …/snapshots/<40-hex commit>/
SNAPSHOT_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass
class TinyStoriesZhConfig:
    repo_id: str = REPO_ID
    revision: str | None = None
    cache_dir: Path | None = None
    local_dir: Path | None = None
    text_key: str = "story_zh"
    strict: bool = False
    offline: bool = False
    # a data file (inside the archive too) whose stories are the validation split; "" for none,
    # "data00_zh.jsonl" as the original project does
    val_file: str = ""


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


class TinyStoriesZhSource:
    name = "tinystories-zh"

    def __init__(self, config: TinyStoriesZhConfig | None = None) -> None:
        self.config = config or TinyStoriesZhConfig()
        self.log = ReadLog(self.name, strict=self.config.strict)
        self._folder: Path | None = None

    def folder(self) -> Path:
        """The local folder holding the repo's files, downloading them first if needed."""
        if self._folder is None:
            self._folder = self._local() if self.config.local_dir else self._download()
        return self._folder

    def _local(self) -> Path:
        folder = Path(self.config.local_dir).expanduser()  # type: ignore[arg-type]
        if not folder.is_dir():
            raise ZhllamaError(f"{folder}: local_dir is not a folder (a copy of {REPO_ID})")
        return folder

    def _download(self) -> Path:
        from huggingface_hub import snapshot_download

        cfg = self.config
        offline = cfg.offline or _offline_env()
        try:
            path = snapshot_download(
                cfg.repo_id,
                repo_type="dataset",
                revision=cfg.revision,
                cache_dir=cfg.cache_dir,
                allow_patterns=ALLOW_PATTERNS,
                local_files_only=offline,
            )
        except Exception as e:  # no network, unknown repo or revision, full disk, …
            if offline:
                why = "offline (HF_HUB_OFFLINE=1 or offline=true) and not in the hub cache"
            else:
                first = (str(e).strip().splitlines() or [""])[0][:160]
                why = f"{type(e).__name__}: {first}"
            raise ZhllamaError(
                f"cannot get the dataset {cfg.repo_id} from the HuggingFace hub ({why}). "
                f"To use a local copy instead: `hf download {cfg.repo_id} --repo-type dataset "
                "--local-dir DIR` where there is network, bring DIR here, and pass "
                "the setting local_dir=DIR"
            ) from None
        return Path(path)  # type: ignore[arg-type]

    def revision(self) -> str | None:
        """The hub commit these files are from: the snapshot folder's name when the folder is
        one of the hub cache's snapshots, else the `revision` the user set (a local copy says
        nothing of its own), else None."""
        folder = self.folder().resolve()
        if folder.parent.name == "snapshots" and SNAPSHOT_COMMIT.fullmatch(folder.name):
            return folder.name
        return self.config.revision

    def files(self) -> list[Path]:
        return list_files(self.folder(), DATA_SUFFIXES, skip=METADATA_FILES)

    def _read(self, log: ReadLog, keep: Keep = None) -> Iterator[str]:
        opts = ReadOptions(text_key=self.config.text_key)
        for path in self.files():
            yield from read_file(path, opts, log, keep)

    def _is_val(self, name: str) -> bool:
        return name == self.config.val_file

    def val_stories(self) -> int | None:
        """How many stories the held-out `val_file` has (read once to count them), or None
        when no file is held out; they are the first `stories()` yields."""
        if not self.config.val_file:
            return None
        quiet = ReadLog(self.name, strict=self.config.strict, max_shown=-1)
        n = sum(1 for _ in self._read(quiet, self._is_val))
        if n == 0:
            raise ZhllamaError(
                f"{self.folder()}: val_file={self.config.val_file} holds no stories "
                "(no data file of that name, inside an archive or not)"
            )
        return n

    def stories(self) -> Iterator[str]:
        self.log = log = ReadLog(f"{self.name} {self.config.repo_id}", strict=self.config.strict)
        if self.config.val_file:
            # the held-out file first, then every other (a second pass over the archive)
            parts = [self._read(log, self._is_val), self._read(log, lambda n: not self._is_val(n))]
        else:
            parts = [self._read(log)]
        for part in parts:
            for story in part:
                log.stories += 1
                yield story
        log.finish()
