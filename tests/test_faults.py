"""Faults found by fuzzing and crash tests (issue 15), on the real commands and files.

- a full filesystem (a real 64 KiB / 1 MiB tmpfs) during `zhllama export` and `zhllama train`
  is one error line naming the target, not a traceback naming a temporary;
- killed with SIGKILL between saving ckpt.pt and exporting it, a resumed run re-exports, so
  model.bin is always the export of the weights ckpt.pt holds;
- temporaries a kill leaves in the run folder are removed on the next start (only ours);
- shards made with a relative tokenizer path train from any folder, and after being moved;
- a jsonl file whose first record is odd keeps the records after it;
- a file name with a newline keeps the error on one line.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from zhllama.cli import main

BIN = Path(sys.executable).parent
ZH = str(BIN / "zhllama")
ROOT = Path(__file__).resolve().parents[1]
STORIES = ["num_stories=300"]
# a model small enough to train a few steps in a second
SMALL = ["dim=32", "n_layers=1", "n_heads=2", "n_kv_heads=2", "max_seq_len=32", "batch_size=4"]
SMALL += ["eval_iters=2", "plot=false", "progress=false"]
ENOSPC = "No space left on device"


def zh(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZH, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A tokenizer and shards made from inside the folder with relative paths, as users type."""
    d = tmp_path_factory.mktemp("faults")
    r = zh("tokenizer", "train", "synthetic", *STORIES, "--vocab-size", "1400", "-o", "tok",
           cwd=d)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = zh("data", "pretokenize", "synthetic", *STORIES, "-j", "1", "-t", "tok/tok1400.model",
           "-o", "shards", cwd=d)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return d


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A real, small filesystem at `path` (we run as root); skips where mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode})")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def only_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:], r.stderr  # one error line, the last (after any progress)
    return errors[0]


def random_bin(path: Path, vocab: int = 1400) -> Path:
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_random_checkpoint.py"), "--dim", "128",
         "--hidden", "384", "--layers", "4", "--heads", "4", "--kv-heads", "4", "--vocab",
         str(vocab), "--seq-len", "64", "-o", str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


def test_export_to_a_full_disk_is_one_line_naming_the_target(work, tmp_path) -> None:
    model = random_bin(tmp_path / "model.bin")  # about 4 MB, the disk holds 1 MiB
    with tmpfs(tmp_path / "full", "1m") as full:
        # before: a SafetensorError traceback naming the temporary folder
        line = only_error_line(
            zh("export", str(model), "-o", str(full / "hf"), "--format", "hf", "--weights-only")
        )
        assert line == f"error: {full / 'hf' / 'model.safetensors'}: {ENOSPC}"
        line = only_error_line(
            zh("export", str(model), "-o", str(full / "m.bin"), "--format", "llama2c")
        )
        assert line == f"error: {full / 'm.bin'}: {ENOSPC}"
        assert list(full.iterdir()) == [], "a temporary was left behind"


def test_train_on_a_full_disk_is_one_line_naming_the_checkpoint(work, tmp_path) -> None:
    with tmpfs(tmp_path / "full", "64k") as full:
        run = full / "run"
        # before: torch's 'enforce fail at inline_container.cc' RuntimeError, a long traceback
        r = zh("train", "size=tiny", f"data_dir={work / 'shards'}", f"out_dir={run}",
               "max_iters=2", "eval_interval=2", *SMALL)  # fmt: skip
        line = only_error_line(r)
        assert line == f"error: {run / 'ckpt.pt'}: {ENOSPC}", r.stderr
        assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


KILL_AT_FINAL_EXPORT = """
import os, signal, sys
from zhllama_trainer import train
from zhllama.cli import main

def killed(self, model, it):  # SIGKILL at the moment ckpt.pt is saved and not yet exported
    if it == {final}:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, model, it)

real, train.Exports.write = train.Exports.write, killed
sys.exit(main({argv!r}))
"""


def test_a_kill_before_the_final_export_is_repaired_on_resume(work, tmp_path) -> None:
    run = tmp_path / "run"
    argv = ["train", "size=tiny", f"data_dir={work / 'shards'}", f"out_dir={run}",
            "max_iters=4", "eval_interval=2", "learning_rate=3e-3", *SMALL]  # fmt: skip
    code = textwrap.dedent(KILL_AT_FINAL_EXPORT).format(final=4, argv=argv)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr
    assert json.loads((run / "model.bin.json").read_text())["iter"] == 2
    # the state a kill in the middle of a checkpoint write leaves, and files that are not ours
    stale = [run / ".ckpt.pt.k1ll3d00.tmp", run / ".model.bin.x9y8z7w6.tmp"]
    others = [run / ".notes.txt.abc.tmp", run / "ckpt.pt.tmp", run / ".ckpt.pt.keep"]
    for p in stale + others:
        p.write_bytes(b"partial")
    before = (run / "model.bin").read_bytes()

    # nothing is left to run (iter 4 of 4), yet model.bin must become iter 4's export
    r = zh(*argv, "--resume")
    assert r.returncode == 0, r.stderr
    assert "exporting iter 4" in r.stderr
    assert "removed 2 temporary file(s)" in r.stderr
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)
    fresh = tmp_path / "fresh.bin"
    assert (
        zh("export", str(run / "ckpt.pt"), "-o", str(fresh), "--format", "llama2c").returncode == 0
    )
    assert (run / "model.bin").read_bytes() == fresh.read_bytes() != before
    assert json.loads((run / "model.bin.json").read_text())["iter"] == 4

    # a resume with model.bin up to date exports nothing again
    r = zh(*argv, "--resume")
    assert r.returncode == 0 and "exporting" not in r.stderr, r.stderr


def test_shards_find_their_tokenizer_from_any_folder_and_after_a_move(work, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = json.loads((work / "shards" / "manifest.json").read_text())
    assert Path(manifest["tokenizer"]).is_absolute()
    assert manifest["tokenizer_relative"] == "../tok/tok1400.model"
    base = ["train", "size=tiny", "max_iters=1", "eval_interval=1", *SMALL]
    # before: 'names no tokenizer model', no tokenizer.bin (the path was relative to `work`)
    r = zh(*base, f"data_dir={work / 'shards'}", "out_dir=run", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "run" / "tokenizer.bin").is_file(), r.stderr
    # the data and its tokenizer moved together: found relative to the manifest
    moved = tmp_path / "moved"
    shutil.copytree(work / "shards", moved / "shards")
    shutil.copytree(work / "tok", moved / "tok")
    data = json.loads((moved / "shards" / "manifest.json").read_text())
    data["tokenizer"] = str(tmp_path / "gone" / "tok1400.model")  # the old place is gone
    (moved / "shards" / "manifest.json").write_text(json.dumps(data))
    r = zh(*base, f"data_dir={moved / 'shards'}", "out_dir=run2", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "run2" / "tokenizer.bin").is_file(), r.stderr
    # a file of that name that is not the data's tokenizer is refused by its hash
    (moved / "tok" / "tok1400.model").write_bytes(b"not it")
    r = zh(*base, f"data_dir={moved / 'shards'}", "out_dir=run3", cwd=elsewhere)
    assert "not the tokenizer the data" in r.stderr and r.returncode == 1, r.stderr


def test_an_odd_first_jsonl_record_does_not_cost_the_rest(tmp_path, capsys) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [json.dumps({"content": "目录", "id": 0}, ensure_ascii=False)]
    lines += [json.dumps({"story_zh": f"从前有一只猫{i}。", "id": i}, ensure_ascii=False)
              for i in range(1, 31)]  # fmt: skip
    (corpus / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # before: the key came from line 1 ('content'), and the 30 stories were all skipped
    assert main(["data", "sample", "jsonl", f"path={corpus}", "-n", "40"]) == 0
    out = capsys.readouterr()
    for i in range(1, 31):
        assert f"从前有一只猫{i}。" in out.out
    assert "text key 'story_zh', held by 30 of the first 31 records" in out.err
    assert "a.jsonl:1: no 'story_zh' key; skipped" in out.err


def test_a_name_with_a_newline_is_one_line(tmp_path) -> None:
    odd = tmp_path / "bad\nname.pt"
    odd.write_bytes(b"not a checkpoint")
    r = zh("export", str(odd), "-o", str(tmp_path / "out.bin"))
    line = only_error_line(r)
    assert "bad\\nname.pt" in line, line
    # an OSError's file name is quoted
    blocked = tmp_path / "a file\nhere"
    blocked.write_text("x")
    r = zh("export", str(random_bin(tmp_path / "m.bin")), "-o", str(blocked / "out.bin"))
    line = only_error_line(r)
    assert json.dumps(str(blocked / "out.bin")) in line or json.dumps(str(blocked)) in line, line


def test_rich_markup_in_a_message_is_printed_as_is(tmp_path) -> None:
    odd = tmp_path / "[red]x.pt"
    odd.write_bytes(b"junk")
    line = only_error_line(zh("export", str(odd), "-o", str(tmp_path / "out.bin")))
    assert "[red]x.pt" in line, line
