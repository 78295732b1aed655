"""zhllama-server as people use it: the official `openai` client (and plain HTTP where a client
would not go) against the real release binary on a free port, with random-weight models made by
tools/gen_random_checkpoint.py. Seeded texts are compared with the real `zhllama-rs` binary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[3]
PROMPT = "从前有一只小猫"
SEEDED = {"temperature": 1.0, "top_p": 0.9, "seed": 1234}


def test_health_models_tokenize(server, small, binary, echo):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert [m.id for m in server.client().models.list()] == [small[0].stem]
    ids = httpx.post(server.url + "/tokenize", json={"content": PROMPT}).json()["tokens"]
    cli = subprocess.run([str(binary("zhllama-rs")), "-z", str(small[1]), "--tokenize",
                          "-i", PROMPT], capture_output=True, text=True, check=True)  # fmt: skip
    assert ids == [int(x) for x in cli.stdout.split()]
    assert echo(server, PROMPT) == PROMPT


@pytest.mark.parametrize("max_tokens", [1, 40])
def test_seeded_completion_equals_zhllama_rs(server, small, max_tokens, zhllama_rs, echo):
    r = server.client().completions.create(
        model=small[0].stem, prompt=PROMPT, max_tokens=max_tokens, **SEEDED
    )
    steps = r.usage.prompt_tokens - 1 + max_tokens
    expected = zhllama_rs(*small, PROMPT, 1234, 1.0, 0.9, steps)
    assert echo(server, PROMPT) + r.choices[0].text == expected
    assert r.usage.completion_tokens == max_tokens
    assert r.choices[0].finish_reason == "length"


def test_streaming_completion_is_the_plain_one_in_whole_characters(server, small):
    plain = server.client().completions.create(
        model=small[0].stem, prompt=PROMPT, max_tokens=60, **SEEDED
    )
    chunks = list(
        server.client().completions.create(
            model=small[0].stem, prompt=PROMPT, max_tokens=60, stream=True, **SEEDED
        )
    )
    assert "".join(c.choices[0].text for c in chunks) == plain.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.choices[0].text for c in chunks[:-1])
    # On the wire: every data line is valid UTF-8 on its own, and the stream ends with [DONE].
    body = {"prompt": PROMPT, "max_tokens": 60, "stream": True, **SEEDED}
    with httpx.stream("POST", server.url + "/v1/completions", json=body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(resp.iter_bytes())
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    for e in events[:-1]:
        assert e.startswith(b"data: ")
        json.loads(e[6:].decode("utf-8"))


def test_chat_plain_and_streaming_equal_zhllama_rs_on_the_template(server, small, zhllama_rs, echo):
    system, user = "你是讲故事的人", "小狗在公园里"
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    client = server.client()
    r = client.chat.completions.create(
        model=small[0].stem, messages=messages, max_tokens=30, **SEEDED
    )
    rendered = f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]"
    steps = r.usage.prompt_tokens - 1 + 30
    expected = zhllama_rs(*small, rendered, 1234, 1.0, 0.9, steps)
    assert r.choices[0].message.role == "assistant"
    assert echo(server, rendered) + r.choices[0].message.content == expected
    chunks = list(
        client.chat.completions.create(
            model=small[0].stem, messages=messages, max_tokens=30, stream=True, **SEEDED
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == r.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"


def _stream_text(client: openai.OpenAI, model: str, prompt: str, leave_after: int = 0, **kw):
    """A streamed completion's text; `leave_after` > 0 closes the connection after that many
    chunks (the client goes away)."""
    stream = client.completions.create(model=model, prompt=prompt, stream=True, **kw)
    text = ""
    for n, chunk in enumerate(stream, 1):
        text += chunk.choices[0].text
        if n == leave_after:
            stream.close()
            break
    return text


def test_concurrent_streams_equal_each_request_alone_and_zhllama_rs(slow, serve, zhllama_rs, echo):
    """Continuous batching keeps every seeded story exact: six streams at once (different
    prompts, seeds, temperatures, one joining late, one leaving early) each equal the same
    request served alone and `zhllama-rs` with that seed."""
    s = serve(*slow, "--threads", "1", "--parallel", "4")
    model = slow[0].stem
    prompts = [
        "从前有一只小猫",
        "小狗在公园里跑",
        "一",
        "森林里住着一只会唱歌的小鸟，它每天早上",
        "月亮",
        "",
    ]
    reqs = [
        {"prompt": p, "max_tokens": 60 + 10 * i, "temperature": [1.0, 0.8, 0.0][i % 3],
         "top_p": 0.9, "seed": 100 + i}
        for i, p in enumerate(prompts)
    ]  # fmt: skip
    busy: list[float] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            busy.append(s.metric("zhllama_busy_slots"))
            time.sleep(0.01)

    try:
        watcher = threading.Thread(target=watch)
        watcher.start()
        clients = [s.client() for _ in range(len(reqs) + 1)]
        with ThreadPoolExecutor(len(reqs) + 1) as pool:
            together = [
                pool.submit(_stream_text, c, model, **r)
                for c, r in zip(clients, reqs[:-1], strict=False)
            ]
            leaver = pool.submit(_stream_text, clients[-2], model, leave_after=3, **reqs[0])
            time.sleep(0.2)  # the last one joins a running batch
            together.append(pool.submit(_stream_text, clients[-1], model, **reqs[-1]))
            texts = [f.result(timeout=120) for f in together]
            leaver.result(timeout=120)
        done.set()
        watcher.join()
        assert max(busy) >= 2, "the streams never ran together"
        alone = [_stream_text(s.client(), model, **r) for r in reqs]
        assert texts == alone
        for r, text in zip(reqs, texts, strict=True):
            usage = s.client().completions.create(model=model, **r).usage
            steps = usage.prompt_tokens - 1 + r["max_tokens"]
            expected = zhllama_rs(*slow, r["prompt"], r["seed"], r["temperature"], 0.9, steps)
            assert echo(s, r["prompt"]) + text == expected, r
        assert s.metric("zhllama_busy_slots") == 0
    finally:
        done.set()
        assert s.stop() == 0


def test_stop_strings_end_the_text_before_them(server, small):
    client = server.client()
    full = client.completions.create(prompt=PROMPT, max_tokens=80, model=small[0].stem, **SEEDED)
    text = full.choices[0].text
    stop = text[20:22]
    cut = text[: text.index(stop)]
    r = client.completions.create(
        prompt=PROMPT, max_tokens=80, stop=[stop, "never-there"], model=small[0].stem, **SEEDED
    )
    assert (r.choices[0].text, r.choices[0].finish_reason) == (cut, "stop")
    chunks = list(
        client.completions.create(
            prompt=PROMPT, max_tokens=80, stop=stop, stream=True, model=small[0].stem, **SEEDED
        )
    )
    assert "".join(c.choices[0].text for c in chunks) == cut
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_max_tokens_is_capped_by_the_context(server, small):
    r = server.client().completions.create(
        model=small[0].stem, prompt=PROMPT, max_tokens=100_000, temperature=0.0
    )
    # 260K: seq_len 512; the random model's EOS is scaled down, so the context fills up.
    assert r.usage.prompt_tokens + r.usage.completion_tokens == 512 + 1
    assert r.choices[0].finish_reason == "length"


def test_errors_arrive_as_the_clients_exception_types(server, small):
    client = server.client()
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=small[0].stem, prompt="x", temperature=5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=small[0].stem, prompt="x", n=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=small[0].stem, messages=[])
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=small[0].stem, prompt="猫" * 600)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="gpt-4", prompt="x")
    assert e.value.code == "model_not_found"
    bad = httpx.post(server.url + "/v1/completions", content=b"{not json")
    assert bad.status_code == 400 and "invalid JSON" in bad.json()["error"]["message"]
    huge = httpx.post(server.url + "/v1/completions", content=b"x" * (2 << 20))
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "invalid_request_error"
    assert httpx.post(server.url + "/detokenize", json={"tokens": [99999]}).status_code == 400
    assert httpx.get(server.url + "/nope").status_code == 404
    # and the server is still fine
    assert client.completions.create(model=small[0].stem, prompt="x", max_tokens=2).choices


def test_api_key(small, serve):
    s = serve(*small, "--api-key", "sekrit")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client("wrong").completions.create(model=small[0].stem, prompt="x", max_tokens=1)
        ok = s.client("sekrit").completions.create(model=small[0].stem, prompt="x", max_tokens=1)
        assert ok.usage.completion_tokens == 1
        assert httpx.get(s.url + "/health").status_code == 200  # probes need no key
    finally:
        assert s.stop() == 0


def test_queue_full_is_429_with_retry_after(slow, serve):
    s = serve(*slow, "--threads", "1", "--parallel", "2", "--max-queue", "1")
    body = {"prompt": "从前", "max_tokens": 250, "stream": True, "temperature": 0}
    url = s.url + "/v1/completions"
    try:
        # two streams fill both slots, a third waits in the queue, a fourth is refused
        with (
            httpx.stream("POST", url, json=body, timeout=60) as a,
            httpx.stream("POST", url, json=body, timeout=60) as b,
        ):
            # keep the iterators: dropping one closes its connection (and cancels its job)
            lines = [a.iter_lines(), b.iter_lines()]
            for it in lines:
                next(it)
            with httpx.stream("POST", url, json=body, timeout=60) as queued:
                assert queued.status_code == 200
                deadline = time.monotonic() + 10
                while s.metric("zhllama_queue_depth") < 1:
                    assert time.monotonic() < deadline, "the third request never queued"
                    time.sleep(0.02)
                with pytest.raises(openai.RateLimitError) as e:
                    s.client().completions.create(model=slow[0].stem, prompt="x", max_tokens=1)
                assert e.value.response.headers["retry-after"] == "1"
                assert s.metric("zhllama_queue_depth") == 1
                assert s.metric("zhllama_busy_slots") == 2
    finally:
        assert s.stop() == 0


def test_a_client_that_leaves_frees_the_worker(slow, serve):
    s = serve(*slow, "--threads", "1")
    body = {"prompt": "从前", "max_tokens": 250, "stream": True, "temperature": 0}
    try:
        with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=60) as r:
            lines = r.iter_lines()
            next(lines)
            next(lines)
        deadline = time.monotonic() + 10
        while s.metric("zhllama_cancelled_generations_total") < 1:
            assert time.monotonic() < deadline, "the generation was not cancelled"
            time.sleep(0.02)
        assert s.metric("zhllama_busy_slots") == 0
        assert s.metric("zhllama_generated_tokens_total") < 250
        # the next request is served at once
        r2 = s.client().completions.create(model=slow[0].stem, prompt="x", max_tokens=3)
        assert r2.usage.completion_tokens == 3
    finally:
        assert s.stop() == 0


def test_sigterm_mid_stream_exits_0_within_the_deadline(slow, serve):
    s = serve(*slow, "--threads", "1", "--drain-seconds", "1")
    body = {"prompt": "从前", "max_tokens": 250, "stream": True, "temperature": 0}
    with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        next(lines)
        s.proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        assert s.proc.wait(timeout=15) == 0
        assert time.monotonic() - start < 10


def test_metrics_count_requests_and_tokens(server, small):
    before = server.metric("zhllama_generated_tokens_total")
    firsts = server.metric("zhllama_time_to_first_token_seconds_count")
    prompts = server.metric("zhllama_prompt_tokens_total")
    r = server.client().completions.create(model=small[0].stem, prompt=PROMPT, max_tokens=5)
    text = httpx.get(server.url + "/metrics").text
    assert server.metric("zhllama_generated_tokens_total") == before + 5
    assert server.metric("zhllama_time_to_first_token_seconds_count") == firsts + 1
    assert server.metric("zhllama_prompt_tokens_total") == prompts + r.usage.prompt_tokens
    assert server.metric("zhllama_busy_slots") == 0 and server.metric("zhllama_queue_depth") == 0
    for name in ["zhllama_requests_total{endpoint=\"completions\"}", "zhllama_queue_depth",
                 "zhllama_busy_slots", "zhllama_slots 8", "zhllama_tokens_per_second",
                 "zhllama_time_to_first_token_seconds_bucket"]:  # fmt: skip
        assert name in text, name


def test_the_wheels_command_and_the_binary_serve_the_same(server, small, serve):
    """`.venv/bin/zhllama-server` (the wheel's script, through the extension) and the release
    binary run the same library: the same seeded text, the same help."""
    binary = ROOT / "target" / "release" / "zhllama-server"
    if not binary.exists():
        pytest.skip("no release binary: run `just build`")
    other = serve(*small, "--threads", "1", exe=binary)
    body = {"model": small[0].stem, "prompt": PROMPT, "max_tokens": 30, **SEEDED}
    texts = [
        httpx.post(s.url + "/v1/completions", json=body).json()["choices"][0]["text"]
        for s in (server, other)
    ]
    assert texts[0] == texts[1] and texts[0]
    venv = ROOT / ".venv" / "bin" / "zhllama-server"
    helps = [
        subprocess.run([str(e), "--help"], capture_output=True, text=True) for e in (venv, binary)
    ]
    assert helps[0].returncode == helps[1].returncode == 0
    assert helps[0].stdout == helps[1].stdout and "--parallel" in helps[0].stdout


def test_a_bad_checkpoint_is_one_line_and_status_1(tmp_path, small, binary):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 10)
    r = subprocess.run([str(binary("zhllama-server")), str(bad), "-z", str(small[1]),
                        "--port", "0"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.bin" in lines[0], r.stderr


def test_the_playground_is_served_from_the_binary(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for part in ['id="tell"', 'id="stop"', 'id="temperature"', 'id="top_p"', 'id="seed"',
                 'id="max_tokens"', "讲故事", "Tell", "/v1/completions", "getReader"]:  # fmt: skip
        assert part in r.text, part
    assert "http" not in r.text.replace(server.url, "").split("<script>")[1]  # no CDN


if os.name != "posix":  # signals and loopback ports as on Linux
    pytest.skip("POSIX only", allow_module_level=True)
