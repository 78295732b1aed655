"""The GIL is released while the engine computes; Ctrl-C interrupts a long generation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import zhllama_rs

# A context long enough that one generation takes seconds (attention grows with position).
LONG = (64, 172, 2, 8, 4, 512, 16384)


def test_python_thread_progresses_while_generating(gen, h, tmp_path) -> None:
    """A counter thread keeps ticking while another thread is inside one generate() call of
    about a second. Were the GIL held for the call, the counter would stop for all of it: its
    longest pause would be the whole call. Released, its pauses stay far shorter."""
    files = h.write_model(gen, tmp_path, shape=LONG)
    model = zhllama_rs.Model(files.model, files.tokenizer, threads=1)
    longest = [0.0]
    ticks = [0]
    span: dict[str, float] = {}
    stop = threading.Event()

    def count() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            now = time.perf_counter()
            longest[0] = max(longest[0], now - last)
            last = now
            ticks[0] += 1

    def generate() -> None:
        t0 = time.perf_counter()
        model.generate("从前", steps=2000, temperature=0.0, stop_at_eos=False)
        span["seconds"] = time.perf_counter() - t0

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.05)
    worker = threading.Thread(target=generate)
    worker.start()
    worker.join()
    stop.set()
    counter.join()
    seconds = span["seconds"]
    assert seconds > 0.3, "the generation is too short to tell"
    assert longest[0] < 0.5 * seconds, f"counter paused {longest[0]:.3f}s of {seconds:.3f}s"
    assert ticks[0] > 1000


def test_two_models_in_two_threads(reference, tiny) -> None:
    """Two threads, two models, at the same time: each result equals the result alone, and the
    calls overlap in time."""
    a = zhllama_rs.Model(reference.model, reference.tokenizer, threads=1)
    b = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    jobs = {
        "a": (a, dict(prompt="Lily", steps=0, temperature=0.9, seed=3, stop_at_eos=False)),
        "b": (b, dict(prompt="从前", steps=0, temperature=0.9, seed=4, stop_at_eos=False)),
    }
    alone = {k: m.generate(**kw) for k, (m, kw) in jobs.items()}
    results: dict[str, list[str]] = {"a": [], "b": []}
    spans: dict[str, tuple[float, float]] = {}
    barrier = threading.Barrier(2)

    def run(key: str) -> None:
        m, kw = jobs[key]
        barrier.wait()
        t0 = time.perf_counter()
        # At least 0.3 s each (a generation takes milliseconds), so that a thread scheduled a
        # little late still finds the other one running.
        while len(results[key]) < 3 or time.perf_counter() - t0 < 0.3:
            results[key].append(m.generate(**kw))
        spans[key] = (t0, time.perf_counter())

    threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in jobs:
        assert results[k] == [alone[k]] * len(results[k])
    (a0, a1), (b0, b1) = spans["a"], spans["b"]
    assert a0 < b1 and b0 < a1


def test_one_model_shared_by_two_threads(reference) -> None:
    """Calls on one model from two threads take turns and stay correct."""
    m = zhllama_rs.Model(reference.model, reference.tokenizer, threads=1)
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


CHILD = """
import sys, time, zhllama_rs
model = zhllama_rs.Model(sys.argv[1], sys.argv[2], threads=1)
print("ready", flush=True)
t0 = time.perf_counter()
try:
    model.generate("从前", steps=0, temperature=0.0, stop_at_eos=False)
    print("finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {time.perf_counter() - t0:.3f}", flush=True)
"""


def test_ctrl_c_interrupts_generate(gen, h, tmp_path) -> None:
    files = h.write_model(gen, tmp_path, shape=LONG)
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(files.model), str(files.tokenizer)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # well inside generate(): 16k positions take far longer
    t0 = time.perf_counter()
    os.kill(p.pid, signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert out.startswith("interrupted"), out
    assert time.perf_counter() - t0 < 5


def test_ctrl_c_ends_both_commands_alike(gen, h, native_cli, tmp_path) -> None:
    """The native binary dies of SIGINT; so does the wheel's command."""
    files = h.write_model(gen, tmp_path, shape=LONG)
    args = [str(files.model), "-z", str(files.tokenizer), "-n", "0", "-t", "0", "--no-eos-stop"]
    codes = []
    for cmd in ([str(native_cli)], h.python_cli()):
        p = subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout is not None
        p.stdout.read(1)  # the story has started
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
        codes.append(p.returncode)
    assert codes == [-signal.SIGINT, -signal.SIGINT]
