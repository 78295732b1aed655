#!/usr/bin/env python3
"""llama.cpp as a benchmark reference through its own library, when no llama.cpp binaries are
built: the venv's `llama_cpp` module (llama-cpp-python, `uv sync --group llamacpp`) is
llama.cpp's C library compiled on this machine, driven here through its low-level C API.

    python tools/llamacpp_py.py prefill MODEL.gguf --threads T -n N
    python tools/llamacpp_py.py decode MODEL.gguf --threads T --seqs S [--prompt 16 --gen 64]

- prefill: one `llama_decode` of N prompt tokens (one sequence, logits of the last only), as
  `llama-bench -p N -n 0` times it: N tokens over the time of that call.
- decode: S sequences, each with a prompt of --prompt tokens (one `llama_decode` for all), then
  --gen steps of one `llama_decode` with one token for each sequence, greedy (argmax of its
  logits), as `llama-batched-bench`'s text generation: S × gen tokens over the time of the
  steps (the prompts' time left out).

The token ids are arbitrary (the weights are random). Each figure is the best of --repeats
runs in this process, after one untimed run. Prints one JSON line: {"tok_per_s": X, ...}.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import time

import llama_cpp as L
import numpy as np


def quiet_logs() -> None:
    """llama.cpp logs every tensor at load; keep stderr for errors."""

    @L.llama_log_callback
    def _drop(level, text, user_data):  # noqa: ARG001
        return None

    quiet_logs.keep = _drop  # the callback must outlive the call
    L.llama_log_set(_drop, ctypes.c_void_p())


class Session:
    """A model and one context for `seqs` sequences of up to `n_ctx` positions each."""

    def __init__(self, path: str, threads: int, seqs: int, n_ctx: int, n_batch: int):
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            raise SystemExit(f"error: llama.cpp could not load {path}")
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx * seqs
        cp.n_batch = cp.n_ubatch = n_batch
        cp.n_seq_max = seqs
        cp.n_threads = cp.n_threads_batch = threads
        cp.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise SystemExit(f"error: llama.cpp could not make a context for {path}")
        self.n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(self.model))
        self.batch = L.llama_batch_init(n_batch, 0, seqs)

    def clear(self) -> None:
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of (token, position, sequence, wants logits) entries."""
        b = self.batch
        b.n_tokens = len(entries)
        for i, (tok, pos, seq, want) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i] = tok, pos, 1
            b.seq_id[i][0] = seq
            b.logits[i] = want
        if L.llama_decode(self.ctx, b) != 0:
            raise SystemExit("error: llama_decode failed")

    def argmax(self, i: int) -> int:
        row = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
        return int(row.argmax())


def token(i: int, n_vocab: int) -> int:
    return 3 + (i * 7919) % (n_vocab - 3)


def prefill(s: Session, n: int) -> float:
    prompt = [(token(i, s.n_vocab), i, 0, i == n - 1) for i in range(n)]
    s.clear()
    t = time.perf_counter()
    s.decode(prompt)
    return n / (time.perf_counter() - t)


def decode(s: Session, seqs: int, n_prompt: int, n_gen: int) -> float:
    s.clear()
    s.decode(
        [
            (token(q * 131 + i, s.n_vocab), i, q, i == n_prompt - 1)
            for q in range(seqs)
            for i in range(n_prompt)
        ]
    )
    last = [s.argmax(q * n_prompt + n_prompt - 1) for q in range(seqs)]
    t = time.perf_counter()
    for step in range(n_gen):
        s.decode([(last[q], n_prompt + step, q, True) for q in range(seqs)])
        last = [s.argmax(q) for q in range(seqs)]
    return seqs * n_gen / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="time llama.cpp through its library")
    ap.add_argument("test", choices=("prefill", "decode"))
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-n", type=int, default=256, help="prefill: prompt tokens")
    ap.add_argument("--seqs", type=int, default=1, help="decode: sequences at once")
    ap.add_argument("--prompt", type=int, default=16, help="decode: prompt tokens a sequence")
    ap.add_argument("--gen", type=int, default=64, help="decode: generated tokens a sequence")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args(argv)
    quiet_logs()
    if a.test == "prefill":
        s = Session(a.model, a.threads, 1, a.n + 8, max(a.n, 32))
        run = lambda: prefill(s, a.n)  # noqa: E731
    else:
        n_batch = max(a.seqs * a.prompt, a.seqs, 32)
        s = Session(a.model, a.threads, a.seqs, a.prompt + a.gen + 8, n_batch)
        run = lambda: decode(s, a.seqs, a.prompt, a.gen)  # noqa: E731
    run()  # untimed: page cache, thread pool, buffers
    best = max(run() for _ in range(a.repeats))
    info = L.llama_print_system_info().decode()
    print(json.dumps({"tok_per_s": best, "system_info": info}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
