"""Threads: the GIL is released while the engine computes, Ctrl-C interrupts a long generation
between tokens, models used from several threads stay correct, and the thread count never
changes a result.

No wall-clock thresholds (machines differ, and may be loaded): the GIL and Ctrl-C are proven
with events and counters. A helper thread can run Python code only while the native call has
released the GIL, and the call can end early only because of what that helper did; the
generation it interrupts is made long by its size of work, not by waiting.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import numpy as np
import zhllama_rs

# A context long enough that a whole generation is far more work than anything the helper
# does: attention grows with position, and 16,384 positions take over 10^10 multiply-adds.
# Every passing run interrupts it after a few tokens.
LONG = (64, 172, 2, 8, 4, 512, 16384)

# The 15M model's widths with 2 layers: its matmuls split across threads and from position
# 113 on its attention heads do too (zhllama-core's thresholds), unlike TINY's.
WIDE = (288, 768, 2, 6, 6, 512, 128)

CHILD = """
import sys, threading, zhllama_rs

model = zhllama_rs.Model(sys.argv[1], sys.argv[2], threads=1)
calling = threading.Event()
count = 0


def helper():
    global count
    calling.wait()
    # Python bytecode: it runs only while no thread holds the GIL. Several switch intervals'
    # worth, so that even a switch just before generate() starts could not finish it.
    for _ in range(300_000):
        count += 1
    print("counted", count, flush=True)  # the parent answers with SIGINT


threading.Thread(target=helper, daemon=True).start()
calling.set()
try:
    model.generate("从前", steps=0, temperature=0.0, stop_at_eos=False)
except KeyboardInterrupt:
    print("interrupted inside generate", flush=True)
else:
    print("generate returned", flush=True)
# the model is intact: the next generation equals a fresh model's
again = model.generate("从前", steps=30, temperature=0.0)
fresh = zhllama_rs.Model(sys.argv[1], sys.argv[2], threads=1)
print("intact", again == fresh.generate("从前", steps=30, temperature=0.0), flush=True)
"""


def test_gil_is_released_and_ctrl_c_interrupts_generate(gen, h, tmp_path) -> None:
    """A helper thread counts while generate() runs in the main thread, then the parent sends
    SIGINT. Were the GIL held for the call, the helper could not count until the whole long
    generation had returned, and no KeyboardInterrupt could come from inside the call."""
    files = h.write_model(gen, tmp_path, shape=LONG)
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(files.model), str(files.tokenizer)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    first = p.stdout.readline()
    if first == "counted 300000\n":
        p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=600)
    assert first + out == "counted 300000\ninterrupted inside generate\nintact True\n", err
    assert p.returncode == 0, err


def test_ctrl_c_ends_both_commands_alike(gen, h, native_cli, tmp_path) -> None:
    """The native binary dies of SIGINT; so does the wheel's command."""
    files = h.write_model(gen, tmp_path, shape=LONG)
    args = [str(files.model), "-z", str(files.tokenizer), "-n", "0", "-t", "0", "--no-eos-stop"]
    codes = []
    for cmd in ([str(native_cli)], h.python_cli()):
        p = subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout is not None
        p.stdout.read(1)  # the story has started; the whole context is far more work
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=600)
        codes.append(p.returncode)
    assert codes == [-signal.SIGINT, -signal.SIGINT]


def test_two_models_in_two_threads(tiny, tiny_v1) -> None:
    """Two threads, two models, at the same time: every result equals the result alone. Each
    thread goes on until both have finished three calls, so their calls interleave."""
    a = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    b = zhllama_rs.Model(tiny_v1.model, tiny.tokenizer, threads=1)
    jobs = {
        "a": (a, dict(prompt="Lily", steps=0, temperature=0.9, seed=3, stop_at_eos=False)),
        "b": (b, dict(prompt="从前", steps=0, temperature=0.9, seed=4, stop_at_eos=False)),
    }
    alone = {k: m.generate(**kw) for k, (m, kw) in jobs.items()}
    results: dict[str, list[str]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def run(key: str) -> None:
        m, kw = jobs[key]
        barrier.wait()
        while min(len(r) for r in results.values()) < 3:
            results[key].append(m.generate(**kw))

    threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in jobs:
        assert len(results[k]) >= 3
        assert results[k] == [alone[k]] * len(results[k])


def test_one_model_shared_by_two_threads(tiny) -> None:
    """Calls on one model from two threads take turns and stay correct."""
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    kw = dict(prompt="Tom", steps=150, temperature=1.0, seed=8)
    want = m.generate(**kw)
    out: list[str] = []

    def run() -> None:
        for _ in range(4):
            out.append(m.generate(**kw))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [want] * 8


def test_thread_count_does_not_change_results(gen, h, native_cli, tmp_path) -> None:
    """On a model wide enough for the engine's parallel paths: the logits of every position
    (f32 and int8) and the story are the same with 1, 2 and 3 threads, and as the CLI's."""
    files = h.write_model(gen, tmp_path, shape=WIDE, version=1, shared=False)
    for quantize in [None, "q8"]:
        logits = []
        for threads in [1, 2, 3]:
            m = zhllama_rs.Model(files.model, files.tokenizer, threads=threads, quantize=quantize)
            logits.append(np.stack([m.forward((7 * p + 300) % 512, p) for p in range(m.seq_len)]))
        for other in logits[1:]:
            np.testing.assert_array_equal(other, logits[0])
    kw = dict(prompt="从前", steps=0, temperature=0.8, seed=7, stop_at_eos=False)
    stories = {
        zhllama_rs.Model(files.model, files.tokenizer, threads=t).generate(**kw) for t in [1, 3]
    }
    assert len(stories) == 1
    r = subprocess.run(
        [str(native_cli), *h.cli_args(files, **kw), "--threads", "2"],
        capture_output=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == stories.pop() + "\n"
