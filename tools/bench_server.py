#!/usr/bin/env python3
"""Load-test zhllama-server on loopback with the official `openai` client (async, streaming).

    python tools/bench_server.py bench/server.json [--clients 32] [--seconds 60] [--threads 2]

Two parts, each against a fresh `zhllama-server` (target/release, built here if missing):

1. **load**: 15M-shape random int8 model, `--parallel 8`; `--clients` concurrent streaming
   clients, each sending requests one after another (mixed prompt lengths, 4 to about 120
   tokens, their own seeds, 48 to 128 new tokens) until `--seconds` have passed. Then every
   request is sent again alone, one at a time: each stream's text must equal its solo text
   (nothing lost, duplicated or mixed up by the batching), and no request may fail.
2. **targets** (issue #18): 110M-shape random int8 model, `--parallel 8`, a 100-token prompt,
   128 new tokens: 8 concurrent streaming clients against the same requests sent one at a time
   (which is also the solo check). Aggregate generated tok/s over the 8 (first request sent →
   last token) ÷ one client's (send → last token, median), and the p50/p99 time to first token
   under that load. Targets: ≥ 4× and p99 ≤ 1.5 s.

Time to first token is measured by the client: from sending the request to its first chunk
with text. Inter-token latency: the gaps between a stream's chunks after the first (one chunk
per step, so about one token each). The load generator runs on the same machine as the
server (one Python thread, asyncio): what it costs shows up in the figures, as it would for a
real client on the same box. Writes JSON to the path given first and prints markdown tables.
Models come from tools/gen_random_checkpoint.py, cached in target/bench/ (the same files
tools/bench_engine.py uses); tok5000 from ../shared/reference when present.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
from bench_engine import ensure_model, ensure_tokenizer

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "target" / "release" / "zhllama-server"
STORY = (
    "从前，有一只小兔子住在森林边上的一个小房子里。每天早上，它都会去河边喝水，"
    "然后在草地上找好吃的胡萝卜。有一天，它遇到了一只迷路的小鸭子，小鸭子哭着说找不到妈妈了。"
    "小兔子说：“别怕，我带你去找妈妈。”它们一起走过了小桥，穿过了花园，终于在池塘边找到了鸭妈妈。"
)


class Server:
    """A zhllama-server on a free loopback port, stopped with SIGTERM."""

    def __init__(self, model: Path, tok: Path, *flags: str):
        if not SERVER.exists():
            cmd = ["cargo", "build", "--release", "-q", "-p", "zhllama-server"]
            subprocess.run(cmd, cwd=ROOT, check=True)
        cmd = [str(SERVER), str(model), "-z", str(tok), "--port", "0", *flags]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            raise SystemExit(f"zhllama-server did not start: {line!r}")
        self.url = line.split("listening on ")[1].strip()
        deadline = time.monotonic() + 120
        while httpx.get(self.url + "/health").status_code != 200:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("zhllama-server never loaded its model")
            time.sleep(0.1)
        self.model = httpx.get(self.url + "/v1/models").json()["data"][0]["id"]

    def tokens(self, text: str) -> int:
        r = httpx.post(self.url + "/tokenize", json={"content": text, "add_special": True})
        return len(r.json()["tokens"])

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)


@dataclass
class Stream:
    """One streamed completion as the client saw it."""

    request: dict
    text: str = ""
    sent: float = 0.0
    first: float | None = None
    last: float = 0.0
    gaps: list[float] = field(default_factory=list)
    tokens: int = 0
    error: str | None = None

    @property
    def ttft(self) -> float:
        return (self.first or self.last) - self.sent


async def stream(client: openai.AsyncOpenAI, request: dict) -> Stream:
    s = Stream(request)
    s.sent = time.perf_counter()
    try:
        chunks = await client.completions.create(
            stream=True, stream_options={"include_usage": True}, **request
        )
        async for chunk in chunks:
            now = time.perf_counter()
            if chunk.usage:
                s.tokens = chunk.usage.completion_tokens
            if not chunk.choices or not chunk.choices[0].text:
                continue
            if s.first is None:
                s.first = now
            else:
                s.gaps.append(now - s.last)
            s.last = now
            s.text += chunk.choices[0].text
    except openai.OpenAIError as e:
        s.error = f"{type(e).__name__}: {e}"
    s.last = s.last or time.perf_counter()
    return s


def client_for(server: Server) -> openai.AsyncOpenAI:
    # one connection per concurrent stream, no retries: an error is an error
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(300.0))
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0,
                              http_client=http)  # fmt: skip


def prompt_of(server: Server, n_tokens: int, offset: int = 0) -> str:
    """A Chinese prompt of exactly `n_tokens` tokens (BOS included) where the text allows."""
    text = (STORY * 8)[offset:]
    lo, hi = 1, len(text)
    while lo < hi:  # the longest prefix with at most n_tokens tokens
        mid = (lo + hi + 1) // 2
        if server.tokens(text[:mid]) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else float("nan")


async def solo(server: Server, streams: list[Stream]) -> list[Stream]:
    """Each request again, alone."""
    client = client_for(server)
    return [await stream(client, s.request) for s in streams]


def check(together: list[Stream], alone: list[Stream]) -> dict:
    errors = [s.error for s in together + alone if s.error]
    differ = sum(a.text != b.text for a, b in zip(together, alone, strict=True))
    return {"errors": len(errors), "first_error": errors[0] if errors else None,
            "texts_differing_from_solo": differ}  # fmt: skip


async def load_part(args) -> dict:
    model = ensure_model("15M", int8=True)
    with Server(model, ensure_tokenizer(), "--parallel", "8", "--threads", str(args.threads),
                "--max-queue", str(4 * args.clients)) as server:  # fmt: skip
        rng = random.Random(18)
        lengths = [4, 12, 30, 60, 90, 120]
        prompts = {n: prompt_of(server, n, offset=n) for n in lengths}
        client = client_for(server)
        deadline = time.perf_counter() + args.seconds
        done: list[Stream] = []

        async def one_client(i: int) -> None:
            k = 0
            while time.perf_counter() < deadline:
                n = rng.choice(lengths)
                request = {
                    "model": server.model,
                    "prompt": prompts[n],
                    "max_tokens": rng.randrange(48, 129),
                    "temperature": 0.9,
                    "top_p": 0.9,
                    "seed": 1000 * i + k + 1,
                }
                done.append(await stream(client, request))
                k += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in range(args.clients)))
        wall = time.perf_counter() - t0
        alone = await solo(server, done)
    ok = [s for s in done if not s.error]
    gaps = [g for s in ok for g in s.gaps]
    ttft = [s.ttft for s in ok]
    return {
        "clients": args.clients, "requests": len(done), "seconds": round(wall, 1),
        "aggregate_tok_s": round(sum(s.tokens for s in ok) / wall, 1),
        "ttft_p50_s": round(pct(ttft, 50), 3), "ttft_p99_s": round(pct(ttft, 99), 3),
        "itl_p50_ms": round(1000 * pct(gaps, 50), 1), "itl_p99_ms": round(1000 * pct(gaps, 99), 1),
        **check(done, alone),
    }  # fmt: skip


async def targets_part(args) -> dict:
    model = ensure_model("110M", int8=True)
    with Server(model, ensure_tokenizer(), "--parallel", "8",
                "--threads", str(args.threads)) as server:  # fmt: skip
        prompt = prompt_of(server, 100)
        n_prompt = server.tokens(prompt)
        base = {"model": server.model, "prompt": prompt, "max_tokens": 128, "temperature": 0.9}
        requests = [{**base, "top_p": 0.9, "seed": 7 + i} for i in range(8)]
        # warm-up: the first request pays for page faults of the weights and the KV caches
        await solo(server, [Stream(requests[0])])
        client = client_for(server)
        t0 = time.perf_counter()
        together = await asyncio.gather(*(stream(client, r) for r in requests))
        wall = time.perf_counter() - t0
        alone = await solo(server, list(together))
    single = statistics.median(s.tokens / (s.last - s.sent) for s in alone if s.tokens)
    aggregate = sum(s.tokens for s in together) / wall
    ttft = [s.ttft for s in together]
    return {
        "prompt_tokens": n_prompt, "max_tokens": 128, "clients": 8,
        "single_tok_s": round(single, 1), "aggregate_tok_s": round(aggregate, 1),
        "speedup": round(aggregate / single, 2),
        "ttft_p50_s": round(pct(ttft, 50), 3), "ttft_p99_s": round(pct(ttft, 99), 3),
        "ttft_alone_s": round(statistics.median(s.ttft for s in alone), 3),
        **check(list(together), alone),
    }  # fmt: skip


def table(load: dict, tgt: dict) -> str:
    ok = lambda r: "yes" if r["errors"] == 0 and r["texts_differing_from_solo"] == 0 else "NO"  # noqa: E731
    return "\n".join([
        f"**Load**: 15M int8 (random weights), `--parallel 8`, {load['clients']} streaming "
        f"clients for {load['seconds']} s, prompts of 4–120 tokens, 48–128 new tokens.",
        "",
        "| requests | aggregate tok/s | TTFT p50 | TTFT p99 | inter-token p50 | inter-token p99 "
        "| errors | every text = served alone |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {load['requests']} | {load['aggregate_tok_s']} | {load['ttft_p50_s']} s "
        f"| {load['ttft_p99_s']} s | {load['itl_p50_ms']} ms | {load['itl_p99_ms']} ms "
        f"| {load['errors']} | {ok(load)} |",
        "",
        f"**Targets** (issue #18): 110M int8 (random weights), `--parallel 8`, "
        f"{tgt['prompt_tokens']}-token prompt, {tgt['max_tokens']} new tokens.",
        "",
        "| one client tok/s | 8 clients, aggregate tok/s | ratio (target ≥ 4×) "
        "| TTFT p50 under load | TTFT p99 (target ≤ 1.5 s) | TTFT alone | every text = alone |",
        "|---:|---:|---:|---:|---:|---:|---|",
        f"| {tgt['single_tok_s']} | {tgt['aggregate_tok_s']} | {tgt['speedup']}× "
        f"| {tgt['ttft_p50_s']} s | {tgt['ttft_p99_s']} s | {tgt['ttft_alone_s']} s | {ok(tgt)} |",
    ])  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long clients keep sending")
    ap.add_argument("--threads", type=int, default=2, help="the server's --threads")
    args = ap.parse_args()
    before = os.getloadavg()[0]
    load = asyncio.run(load_part(args))
    tgt = asyncio.run(targets_part(args))
    # other work on the machine slows the server and the clients alike; say how much there was
    loadavg = {"before": round(before, 2), "after": round(os.getloadavg()[0], 2)}
    doc = {"load": load, "targets": tgt, "load_average": loadavg}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(load, tgt))
    print(f"\nLoad average (1 min) before and after: {loadavg['before']}, {loadavg['after']}.")
    bad = [r for r in (load, tgt) if r["errors"] or r["texts_differing_from_solo"]]
    if bad:
        b = bad[0]
        print(f"error: {b['errors']} errors, {b['texts_differing_from_solo']} texts differ "
              f"from the same request alone ({b['first_error']})", file=sys.stderr)  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
