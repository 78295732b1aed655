"""The robustness pass: every command given bad input as a careless user would give it.

Each case must end in one clear line naming the file and the problem, a non-zero exit, no
traceback, and nothing half-written. Ctrl-C is a real SIGINT sent to a real subprocess (to its
whole process group, as a terminal does). Cases the packages already test on their own (bad
checkpoints for zhllama-rs, malformed jsonl lines, vocab mismatches in the engine...) are not
repeated here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from zhllama.cli import main

BIN = Path(sys.executable).parent
ZH = str(BIN / "zhllama")
STORIES = ["num_stories=300"]
# a model small enough to train a few steps in a second
SMALL = ["dim=32", "n_layers=1", "n_heads=2", "n_kv_heads=2", "max_seq_len=32", "batch_size=4"]
SMALL += ["eval_iters=2", "plot=false", "progress=false", "export_bin=false"]


def zh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ZH, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A tiny tokenizer (two of them, to mismatch), shards and a trained run."""
    d = tmp_path_factory.mktemp("robust")
    for vocab in (1400, 1450):
        assert main(["tokenizer", "train", "synthetic", *STORIES, "--vocab-size", str(vocab),
                     "-o", str(d / "tok")]) == 0  # fmt: skip
    shards = ["data", "pretokenize", "synthetic", *STORIES, "-j", "1"]
    assert main([*shards, "-z", str(d / "tok" / "tok1400.model"), "-o", str(d / "shards")]) == 0
    assert main(["train", "size=tiny", f"data_dir={d / 'shards'}", f"out_dir={d / 'run'}",
                 "max_iters=2", "eval_interval=2", *SMALL]) == 0  # fmt: skip
    (d / "afile").write_text("a regular file where a folder is expected\n")
    return d


def one_line_error(capsys, argv: list[str], *words: str) -> str:
    """Run the CLI in-process: exit 1, one line on stderr naming `words`."""
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:"), err
    for w in words:
        assert w in err, err
    return err


def test_output_folder_under_a_regular_file(work, capsys):
    """A path whose parent is a file: the one failure every user can cause, even as root."""
    blocked = work / "afile" / "out"
    tok = str(work / "tok" / "tok1400.model")
    cases = [
        ["data", "pretokenize", "synthetic", *STORIES, "-z", tok, "-o", str(work / "afile")],
        ["data", "pretokenize", "synthetic", *STORIES, "-z", tok, "-o", str(blocked)],
        ["export", str(work / "run" / "ckpt.pt"), "-o", str(blocked / "m.bin")],
        [
            "train",
            "size=tiny",
            f"data_dir={work / 'shards'}",
            f"out_dir={work / 'afile'}",
            "max_iters=1",
            *SMALL,
        ],  # fmt: skip
    ]
    for argv in cases:
        one_line_error(capsys, argv, str(work / "afile"))
    assert (work / "afile").read_text().startswith("a regular file")


def test_full_disk_and_device_outputs(work, capsys):
    """Writing to /dev/full is a full disk; the device node itself must survive (the atomic
    writer used to rename its temporary file over it)."""
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full character device here")
    ckpt = str(work / "run" / "ckpt.pt")
    one_line_error(capsys, ["export", ckpt, "/dev/full"], "/dev/full", "No space left")
    one_line_error(capsys, ["tokenizer", "export", str(work / "tok" / "tok1400.model"),
                            "--out", "/dev/full"], "/dev/full")  # fmt: skip
    assert Path("/dev/full").is_char_device()
    assert main(["export", ckpt, "/dev/null"]) == 0
    assert Path("/dev/null").is_char_device()


def test_unwritable_system_folder_names_the_target(work, capsys):
    err = one_line_error(capsys, ["export", str(work / "run" / "ckpt.pt"), "/proc/m.bin"])
    assert "/proc/m.bin" in err and ".tmp" not in err


def test_train_with_the_wrong_tokenizer(work, capsys):
    out = work / "wrongtok"
    argv = ["train", "size=tiny", f"data_dir={work / 'shards'}", f"out_dir={out}",
            f"tokenizer={work / 'tok' / 'tok1450.model'}", "max_iters=1", *SMALL]  # fmt: skip
    one_line_error(capsys, argv, "tok1450.model", "not the tokenizer")
    assert not (out / "ckpt.pt").exists()


def test_empty_and_broken_corpus_for_pretokenize(work, capsys):
    (work / "empty.txt").write_bytes(b"")
    (work / "broken.jsonl").write_bytes(b'{"text": "\xff\xfe"}\n{broken\n\xff\n')
    tok = str(work / "tok" / "tok1400.model")
    for corpus in ("empty.txt", "broken.jsonl"):
        out = work / f"shards-{corpus}"
        argv = ["data", "pretokenize", "jsonl", f"path={work / corpus}", "-z", tok]
        one_line_error(capsys, [*argv, "-o", str(out)], "gave no stories")
        assert not out.exists()


def test_truncated_checkpoint_everywhere(work, capsys):
    ckpt = (work / "run" / "ckpt.pt").read_bytes()
    cut = work / "cut.pt"
    for size in (1000, len(ckpt) // 2):
        cut.write_bytes(ckpt[:size])
        for argv in (["export", str(cut), "-o", str(work / "cut.bin")], ["eval", str(cut)],
                     ["sample", str(cut), "--engine", "torch", "-n", "4"]):  # fmt: skip
            one_line_error(capsys, argv, str(cut), "not a readable zhllama checkpoint")
        assert not (work / "cut.bin").exists()


def _wait_for(cond, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"finished before {what}: {proc.communicate()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def _ctrl_c(cmd: list[str], cond, what: str) -> subprocess.CompletedProcess:
    """Start `cmd`, press Ctrl-C (SIGINT to the process group) once `cond()` holds."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    _wait_for(cond, proc, what)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_ctrl_c_in_training_leaves_a_checkpoint_that_resumes(work):
    from zhllama_trainer.checkpoint import load_checkpoint, load_model

    run = work / "sigint-run"
    base = ["train", "size=tiny", f"data_dir={work / 'shards'}", f"out_dir={run}", *SMALL]
    cut = _ctrl_c([ZH, *base, "max_iters=100000", "eval_interval=3", "log_interval=1"],
                  lambda: (run / "ckpt.pt").exists(), "the first checkpoint")  # fmt: skip
    assert cut.returncode == 130, cut
    assert "Traceback" not in cut.stderr and "interrupted at iter" in cut.stderr, cut.stderr
    stopped = load_checkpoint(run / "ckpt.pt")["iter_num"]
    load_model(run / "ckpt.pt")  # loadable as a model, not only as a dict
    assert not list(run.glob(".*.tmp"))
    done = zh(*base, "resume=true", f"max_iters={stopped + 2}", "eval_interval=3")
    assert done.returncode == 0, done.stderr
    assert f"resuming at iter {stopped}" in " ".join(done.stderr.split())
    assert load_checkpoint(run / "ckpt.pt")["iter_num"] == stopped + 2


def test_ctrl_c_in_pretokenize_leaves_no_half_shard_and_resumes_identically(work):
    """Ctrl-C once three shards are on disk. The corpus is large (20,000 stories, ~150
    shards) so that the run is still far from its end when the signal lands, on any CPU: the
    three shards are 2% of the work, and the poll looks every few milliseconds."""
    tok = str(work / "tok" / "tok1400.model")
    argv = ["data", "pretokenize", "synthetic", "num_stories=20000", "-z", tok,
            "-j", "2", "--shard-tokens", "40000", "--chunk-stories", "16"]  # fmt: skip
    whole, cut = work / "pt-whole", work / "pt-cut"
    assert zh(*argv, "-o", str(whole)).returncode == 0
    assert len(list(whole.glob("train_*.bin"))) >= 100, "too few shards for the test to mean much"
    stopped = _ctrl_c([ZH, *argv, "-o", str(cut)], lambda: len(list(cut.glob("train_*.bin"))) >= 3,
                      "three shards")  # fmt: skip
    assert stopped.returncode != 0 and "Traceback" not in stopped.stderr, stopped.stderr
    # no temporary left behind; every shard on disk is complete: the ones the manifest lists
    # and any written after its last update are byte for byte the uninterrupted run's
    assert not [p for p in cut.iterdir() if p.name.startswith(".")]
    manifest = json.loads((cut / "manifest.json").read_text())
    assert not manifest.get("complete")
    listed = manifest["shards"]["train"] + manifest["shards"]["val"]
    on_disk = sorted(p.name for p in cut.glob("*.bin"))
    assert set(listed) <= set(on_disk)
    assert len(on_disk) < len(list(whole.glob("*.bin"))), "the run finished before Ctrl-C"
    for name in on_disk:
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
    resumed = zh(*argv, "-o", str(cut))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout + resumed.stderr
    names = sorted(p.name for p in whole.iterdir())
    assert names == sorted(p.name for p in cut.iterdir())
    for name in names:
        if name != "manifest.json":
            assert (whole / name).read_bytes() == (cut / name).read_bytes(), name
    a, b = (json.loads((d / "manifest.json").read_text()) for d in (whole, cut))
    assert a["shards"] == b["shards"] and a["counts"] == b["counts"]
