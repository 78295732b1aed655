"""Model.generate_batch and Model.stream_batch: stories told together through the core
scheduler are byte-identical to generate() alone with seed + i, the streaming form yields
(index, piece) pairs that join to the same stories, the native binary's --batch-file agrees,
and the GIL is released while a batch runs."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
import zhllama_rs

PROMPTS = ["一丁", "", "Once upon a time", "七", "丈三上下万", "x y", "一", "三上"]


def test_batch_stories_equal_stories_alone(tiny) -> None:
    for quantize in (None, "q8"):
        m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=2, quantize=quantize)
        alone = [
            m.generate(p, steps=60, temperature=0.9, seed=100 + i) for i, p in enumerate(PROMPTS)
        ]
        for parallel in (1, 3, 8):
            got = m.generate_batch(PROMPTS, steps=60, temperature=0.9, seed=100, parallel=parallel)
            assert got == alone, parallel
        # streaming: pieces of each story in order, joined per index
        stream = m.stream_batch(PROMPTS, steps=60, temperature=0.9, seed=100, parallel=3)
        joined = [""] * len(PROMPTS)
        for index, piece in stream:
            assert piece
            joined[index] += piece
        assert joined == alone
        assert all(r in ("eos", "length") for r in stream.finish_reasons)


def test_a_single_stream_survives_a_batch_beside_it(tiny) -> None:
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    want = m.generate("一丁丂", steps=40, temperature=0.0)
    s = m.stream("一丁丂", steps=40, temperature=0.0)
    first = next(s)
    m.generate_batch(["七", "三"], steps=20, seed=3)
    assert first + "".join(s) == want


def test_batch_arguments(tiny) -> None:
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer)
    assert m.generate_batch([]) == []
    with pytest.raises(ValueError, match="parallel"):
        m.generate_batch(["一"], parallel=0)
    with pytest.raises(ValueError, match="NaN"):
        m.stream_batch(["一"], temperature=float("nan"))
    with pytest.raises(TypeError):
        m.generate_batch("一丁")  # type: ignore[arg-type]  # a str is not a list of prompts


def test_native_batch_file_agrees(tiny, native_cli, tmp_path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    out = subprocess.run(
        [str(native_cli), str(tiny.model), "-z", str(tiny.tokenizer), "--batch-file", str(path)]
        + ["--parallel", "3", "-n", "60", "-t", "0.9", "-s", "100"],
        capture_output=True,
        check=True,
    )
    lines = [json.loads(line) for line in out.stdout.decode().splitlines()]
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer)
    stories = m.generate_batch(PROMPTS, steps=60, temperature=0.9, seed=100)
    assert [x["text"] for x in lines] == stories
    assert [x["seed"] for x in lines] == list(range(100, 100 + len(PROMPTS)))
    assert [x["prompt"] for x in lines] == PROMPTS
    assert all(x["finish_reason"] in ("eos", "length") for x in lines)


def test_gil_is_released_during_a_batch(tiny) -> None:
    """The batch runs in a worker thread; once it has started, this thread runs Python code
    (a count) and then finds the worker still inside the call. Were the GIL held for the call,
    this thread could not run at all until the whole batch (64 stories of 256 positions, far
    more work than the count) had returned."""
    m = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    started = threading.Event()
    stories: list[str] = []

    def worker() -> None:
        started.set()
        stories.extend(m.generate_batch(PROMPTS * 8, steps=0, temperature=0.0, stop_at_eos=False))

    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    n = 0
    for _ in range(100_000):
        n += 1
    still_running = t.is_alive()
    t.join()
    assert n == 100_000 and still_running
    assert len(stories) == 64
