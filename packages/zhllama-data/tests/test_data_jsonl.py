"""The jsonl source: every file type it reads, key detection, malformed input, strict mode."""

from __future__ import annotations

import gzip
import json
import tarfile
from pathlib import Path

import pytest
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry
from zhllama_data.sources.jsonl import JsonlConfig, JsonlSource


def read(path: Path, **settings) -> list[str]:
    return list(get_registry().create("sources", "jsonl", path=str(path), **settings).stories())


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_folder_of_mixed_files_in_sorted_order(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"story_zh": "第一个故事。", "story": "english"}])
    (tmp_path / "b.json").write_text(
        json.dumps([{"text": "第二个故事。"}, {"text": "第三个故事。"}], ensure_ascii=False),
        encoding="utf-8",
    )
    (tmp_path / "c.txt").write_text("第四个故事，\n有两行。\n\n\n第五个故事。\n", encoding="utf-8")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "e.md").write_text("第六个故事。", encoding="utf-8")
    (tmp_path / "notes.csv").write_text("ignored", encoding="utf-8")
    (tmp_path / ".hidden.jsonl").write_text('{"text": "hidden"}\n', encoding="utf-8")
    assert read(tmp_path) == [
        "第一个故事。",
        "第二个故事。",
        "第三个故事。",
        "第四个故事，\n有两行。",
        "第五个故事。",
        "第六个故事。",
    ]


@pytest.mark.parametrize("key", ["story_zh", "story", "text", "content"])
def test_text_key_is_detected(tmp_path, key):
    write_jsonl(tmp_path / "x.jsonl", [{"id": 1, key: "故事。"}, {"id": 2, key: "又一个。"}])
    assert read(tmp_path) == ["故事。", "又一个。"]


def test_story_zh_wins_over_the_english_story(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", [{"story": "Once upon a time.", "story_zh": "从前。"}])
    assert read(tmp_path) == ["从前。"]
    assert read(tmp_path, text_key="story") == ["Once upon a time."]


def test_malformed_lines_are_counted_and_reported(tmp_path, capsys):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"text": "好的一行。"},
            "{not json",
            "[1, 2]",
            {"other": "没有文本键"},
            {"text": 42},
            "",
            {"text": "最后一行。"},
        ],
    )
    source = JsonlSource(JsonlConfig(path=path))
    assert list(source.stories()) == ["好的一行。", "最后一行。"]
    assert source.log.malformed == 4
    err = capsys.readouterr().err
    for line in (2, 3, 4, 5):
        assert f"{path}:{line}:" in err
    assert "bad JSON" in err and "expected a JSON object" in err and "no 'text' key" in err
    assert "skipped 4 malformed record(s)" in err


def test_strict_mode_stops_at_the_first_bad_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": "好。"}, "{oops"])
    with pytest.raises(ZhllamaError, match=r"bad\.jsonl:2: bad JSON .*strict"):
        read(path, strict="true")


def test_missing_folder_and_empty_folder(tmp_path):
    with pytest.raises(ZhllamaError, match="no such file or folder"):
        read(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZhllamaError, match="no data files"):
        read(tmp_path / "empty")
    with pytest.raises(ZhllamaError, match="needs a path"):
        get_registry().create("sources", "jsonl")
    (tmp_path / "x.csv").write_text("a,b", encoding="utf-8")
    with pytest.raises(ZhllamaError, match="unsupported file type"):
        read(tmp_path / "x.csv")


def test_text_that_is_not_utf8_is_reported(tmp_path, capsys):
    (tmp_path / "gbk.jsonl").write_bytes(
        json.dumps({"text": "中文故事。"}, ensure_ascii=False).encode("gbk") + b"\n"
    )
    (tmp_path / "gbk.txt").write_bytes("第一段。\n\n第二段有坏字节。".encode("gbk"))
    (tmp_path / "ok.txt").write_bytes("\ufeff带BOM的故事。".encode())
    assert read(tmp_path) == ["带BOM的故事。"]
    err = capsys.readouterr().err
    assert "gbk.jsonl:1: not valid UTF-8" in err
    assert "gbk.txt:1: not valid UTF-8" in err and "gbk.txt:3: not valid UTF-8" in err
    with pytest.raises(ZhllamaError, match="gbk.jsonl:1: not valid UTF-8"):
        read(tmp_path, strict=True)


def test_json_array_is_streamed_across_chunks(tmp_path):
    """Larger than the 1 MiB read size, so elements straddle chunk boundaries."""
    stories = [f"第{i}个故事：" + "小兔子在森林里跳来跳去。" * 20 for i in range(1500)]
    path = tmp_path / "big.json"
    path.write_text(
        json.dumps([{"story_zh": s, "n": i} for i, s in enumerate(stories)], ensure_ascii=False),
        encoding="utf-8",
    )
    assert path.stat().st_size > 1 << 20
    assert read(path) == stories


def test_damaged_json_array_skips_the_rest_with_its_line(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('[\n{"text": "一。"},\n{"text": "二。"}\n{"text": "三。"}\n]', encoding="utf-8")
    assert read(path) == ["一。", "二。"]
    assert "bad.json:4: expected ',' or ']'" in capsys.readouterr().err
    single = tmp_path / "one.json"
    single.write_text('{"content": "只有一个对象。"}', encoding="utf-8")
    assert read(single) == ["只有一个对象。"]


def test_txt_split_modes(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("一行。\n二行。\n\n三行。\n", encoding="utf-8")
    assert read(path) == ["一行。\n二行。", "三行。"]
    assert read(path, txt_split="line") == ["一行。", "二行。", "三行。"]
    assert read(path, txt_split="file") == ["一行。\n二行。\n\n三行。"]
    with pytest.raises(ZhllamaError, match="txt_split must be one of"):
        read(path, txt_split="words")


def test_gzip_and_tar_archives(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"text": "压缩的故事。"}, ensure_ascii=False) + "\n")
    inner = write_jsonl(tmp_path / "src" / "data00.jsonl", [{"story_zh": "归档里的故事。"}])
    with tarfile.open(tmp_path / "b.tar.gz", "w:gz") as tar:
        tar.add(inner, arcname="data/data00.jsonl")
    (tmp_path / "src" / "data00.jsonl").unlink()
    assert read(tmp_path) == ["压缩的故事。", "归档里的故事。"]
    (tmp_path / "c.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(ZhllamaError, match="c.tar.gz: damaged archive"):
        read(tmp_path)


def test_parquet_needs_pyarrow(tmp_path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        (tmp_path / "x.parquet").write_bytes(b"PAR1")
        with pytest.raises(ZhllamaError, match="needs pyarrow"):
            read(tmp_path)
        return
    pq.write_table(pa.table({"story_zh": ["列式存储的故事。", None]}), tmp_path / "x.parquet")
    assert read(tmp_path) == ["列式存储的故事。"]


def test_unreadable_file_is_an_error(tmp_path):
    """Files that cannot be read whoever you are (root included): a link whose target was
    moved away, and one whose reads fail in the kernel (/proc/self/mem at offset 0 is EIO)."""
    write_jsonl(tmp_path / "ok.jsonl", [{"text": "能读的故事。"}])
    (tmp_path / "moved.jsonl").symlink_to(tmp_path / "gone" / "moved.jsonl")
    with pytest.raises(ZhllamaError, match=r"moved.jsonl: cannot read \(No such file"):
        read(tmp_path)
    (tmp_path / "moved.jsonl").unlink()
    (tmp_path / "mem.jsonl").symlink_to("/proc/self/mem")
    with pytest.raises(ZhllamaError, match=r"mem.jsonl: cannot read \(Input/output error"):
        read(tmp_path)
