"""The tinystories-zh source, without network: a local folder laid out like the hub repo, the
hub cache in offline mode, and the error that tells the user what to do offline."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry

STORIES = [f"从前，有一只小兔子，它的名字叫{name}。" for name in ("白白", "跳跳", "灰灰", "毛毛")]


def make_hub_folder(root: Path) -> Path:
    """Like adam89/TinyStoriesChinese: a .tar.gz of jsonl shards (story + story_zh) + README."""
    root.mkdir(parents=True)
    with tarfile.open(root / "TinyStories_all_data_zh.tar.gz", "w:gz") as tar:
        for i, chunk in enumerate((STORIES[:2], STORIES[2:])):
            lines = [
                json.dumps({"story": f"Once upon a time {n}.", "story_zh": s}, ensure_ascii=False)
                for n, s in enumerate(chunk)
            ]
            data = ("\n".join(lines) + "\n").encode()
            info = tarfile.TarInfo(f"data{i:02d}_zh.jsonl")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "README.md").write_text("# TinyStoriesChinese\n\nnot a story\n", encoding="utf-8")
    (root / "dataset_infos.json").write_text('{"default": {}}', encoding="utf-8")
    return root


def stories(**settings) -> list[str]:
    return list(get_registry().create("sources", "tinystories-zh", **settings).stories())


def test_local_copy_of_the_hub_repo(tmp_path):
    folder = make_hub_folder(tmp_path / "TinyStoriesChinese")
    assert stories(local_dir=str(folder)) == STORIES


def test_offline_mode_reads_the_hub_cache(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "datasets--adam89--TinyStoriesChinese"
    make_hub_folder(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    assert stories(cache_dir=str(tmp_path / "cache"), offline="true") == STORIES


def test_offline_without_a_cache_says_how_to_use_a_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ZhllamaError) as err:
        stories(cache_dir=str(tmp_path / "empty-cache"))
    message = str(err.value)
    assert "adam89/TinyStoriesChinese" in message
    assert "local_dir=DIR" in message and "hf download" in message


def test_missing_local_dir_and_empty_repo(tmp_path):
    with pytest.raises(ZhllamaError, match="local_dir is not a folder"):
        stories(local_dir=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("only a readme", encoding="utf-8")
    with pytest.raises(ZhllamaError, match="no data files"):
        stories(local_dir=str(tmp_path / "empty"))


def test_malformed_records_in_the_archive_are_reported(tmp_path, capsys):
    folder = tmp_path / "repo"
    folder.mkdir()
    data = b'{"story_zh": "\xe5\xa5\xbd\xe3\x80\x82"}\n{"story": "english only"}\n'
    with tarfile.open(folder / "part.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("data/part0.jsonl")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert stories(local_dir=str(folder)) == ["好。"]
    assert "part.tar.gz!data/part0.jsonl:2: no 'story_zh' key" in capsys.readouterr().err
    with pytest.raises(ZhllamaError, match="strict"):
        stories(local_dir=str(folder), strict="yes")


def test_cli_offline_error_is_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    exe = Path(sys.executable).with_name("zhllama")  # the console script beside this python
    cmd = [str(exe), "data", "sample", "tinystories-zh", "-n", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: cannot get the dataset adam89/TinyStoriesChinese")
    assert "local_dir" in proc.stderr


def test_val_file_comes_first_and_is_counted(tmp_path):
    folder = make_hub_folder(tmp_path / "TinyStoriesChinese")
    source = get_registry().create(
        "sources", "tinystories-zh", local_dir=str(folder), val_file="data01_zh.jsonl"
    )
    # data01's stories lead, then the rest in the archive's order
    assert list(source.stories()) == STORIES[2:] + STORIES[:2]
    assert source.val_stories() == 2
    plain = get_registry().create("sources", "tinystories-zh", local_dir=str(folder))
    assert plain.val_stories() is None
    missing = get_registry().create(
        "sources", "tinystories-zh", local_dir=str(folder), val_file="data09_zh.jsonl"
    )
    with pytest.raises(ZhllamaError, match="val_file=data09_zh.jsonl holds no stories"):
        missing.val_stories()
