"""`zhllama data sample|export|sources`, in-process through zhllama.cli.main and once through
the real console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from zhllama.cli import main
from zhllama_data.sources.synthetic import generate_story


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_prints_stories(capsys):
    code, out, _ = run(capsys, "data", "sample", "synthetic", "-n", "2", "seed=7")
    assert code == 0
    assert out == generate_story(7) + "\n\n" + generate_story(8) + "\n"


def test_sample_skip_and_json(capsys):
    code, out, _ = run(capsys, "data", "sample", "synthetic", "-n", "1", "--skip", "3", "--json")
    assert code == 0
    assert json.loads(out) == {"story_zh": generate_story(3)}


def test_export_writes_shards_that_the_jsonl_source_reads_back(tmp_path, capsys):
    out_dir = tmp_path / "corpus"
    argv = ["data", "export", "synthetic", str(out_dir), "-n", "25", "--shard-size", "10"]
    code, out, _ = run(capsys, *argv, "seed=100")
    assert code == 0 and "wrote 25 stories in 3 shard(s)" in out
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["stories-00000.jsonl", "stories-00001.jsonl", "stories-00002.jsonl"]
    lines = (out_dir / "stories-00002.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"story_zh": generate_story(100 + i)} for i in range(20, 25)
    ]
    code, out, _ = run(capsys, "data", "sample", "jsonl", "-n", "25", "-s", f"path={out_dir}")
    assert out.split("\n\n") == [generate_story(100 + i) for i in range(25)][:-1] + [
        generate_story(124) + "\n"
    ]


def test_export_refuses_to_overwrite_without_force(tmp_path, capsys):
    out_dir = tmp_path / "corpus"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine", encoding="utf-8")
    code, _, err = run(capsys, "data", "export", "synthetic", str(out_dir), "-n", "3")
    assert code == 1 and "not empty; pass --force" in err
    assert (out_dir / "keep.txt").exists()
    code, _, _ = run(capsys, "data", "export", "synthetic", str(out_dir), "-n", "3", "--force")
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["stories-00000.jsonl"]


def test_export_of_an_empty_source_leaves_nothing(tmp_path, capsys):
    out_dir = tmp_path / "corpus"
    code, _, err = run(capsys, "data", "export", "synthetic", "-o", str(out_dir), "num_stories=0")
    assert code == 1 and "gave no stories" in err
    assert not out_dir.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "sample", "nope"], "unknown source 'nope'; known sources: "),
        (["data", "sample", "synthetic", "colour=red"], "unknown setting colour; known settings"),
        (["data", "sample", "synthetic", "seed=abc"], "seed must be int"),
        (["data", "sample", "synthetic", "oops"], "cannot read setting 'oops'"),
        (["data", "sample", "synthetic", "-n", "0"], "-n must be at least 1"),
        (["data", "sample", "jsonl", "path=/no/such/dir"], "no such file or folder"),
    ],
)
def test_user_errors_are_one_line(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert message in err.replace("\n", " ")
    assert "Traceback" not in err


def test_help_has_examples(capsys):
    for argv in (["data"], ["data", "sample"], ["data", "export"], ["data", "sources"]):
        code, out, _ = run(capsys, *argv, "--help")
        assert code == 0
        assert "Example" in out and "zhllama data" in out


def test_sources_lists_settings(capsys):
    code, out, _ = run(capsys, "data", "sources")
    assert code == 0
    for text in ("synthetic", "jsonl", "tinystories-zh", "num_stories=50000"):
        assert text in out


def test_console_script(tmp_path):
    exe = str(Path(sys.executable).with_name("zhllama"))
    proc = subprocess.run(
        [exe, "data", "export", "synthetic", str(tmp_path / "out"), "-n", "5", "-s", "seed=3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "out" / "stories-00000.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["story_zh"] for x in lines] == [generate_story(3 + i) for i in range(5)]
    proc = subprocess.run(
        [exe, "data", "sample", "synthetic", "-n", "1", "-s", "seed=3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout == generate_story(3) + "\n"


def test_old_set_spelling_works_with_one_deprecation_line(capsys):
    code, new, err = run(capsys, "data", "sample", "synthetic", "-n", "2", "seed=5")
    assert code == 0 and err == ""
    code, old, err = run(capsys, "data", "sample", "synthetic", "-n", "2", "--set", "seed=5")
    assert code == 0 and old == new
    assert err.strip() == (
        "deprecated: --set KEY=VALUE will be removed in the next release; "
        "write KEY=VALUE after the arguments"
    )


def test_data_help_lists_pretokenize(capsys):
    code, out, _ = run(capsys, "data", "--help")
    assert code == 0 and "pretokenize" in out and "sample" in out and "export" in out
