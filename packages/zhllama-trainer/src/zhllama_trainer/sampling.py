"""llama2.c's sampler (FORMATS.md §3), so torch and the Rust engine agree at a given seed."""

from __future__ import annotations

import time

import numpy as np

MASK64 = (1 << 64) - 1


class XorShiftRng:
    """run.c's random_u32: xorshift* on a 64-bit state."""

    def __init__(self, seed: int | None) -> None:
        if not seed:  # 0 or None: seed from the clock, as run.c does
            seed = time.time_ns() & MASK64 or 1
        self.state = seed & MASK64

    def next_u32(self) -> int:
        s = self.state
        s ^= s >> 12
        s ^= (s << 25) & MASK64
        s ^= s >> 27
        self.state = s
        return ((s * 0x2545F4914F6CDD1D) & MASK64) >> 32

    def next_f32(self) -> np.float32:
        return np.float32((self.next_u32() >> 8) / 16777216.0)


def softmax_f32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    e = np.exp(x - x.max(), dtype=np.float32)
    return (e / e.sum(dtype=np.float32)).astype(np.float32)


def _walk(probs: np.ndarray, coin: np.float32) -> int:
    """First index whose running sum exceeds `coin`; the last index if none does."""
    cdf = np.cumsum(probs, dtype=np.float32)  # sequential float32 sums, like the C loop
    hit = np.nonzero(coin < cdf)[0]
    return int(hit[0]) if hit.size else len(probs) - 1


def sample_top_p(probs: np.ndarray, top_p: float, coin: np.float32) -> int:
    """Nucleus sampling as run.c's sample_topp does it."""
    n = len(probs)
    cutoff = np.float32((1.0 - np.float32(top_p)) / (n - 1))
    idx = np.nonzero(probs >= cutoff)[0]
    order = idx[np.argsort(-probs[idx], kind="stable")]
    sorted_p = probs[order]
    cum = np.cumsum(sorted_p, dtype=np.float32)
    over = np.nonzero(cum > np.float32(top_p))[0]
    last = int(over[0]) if over.size else len(order) - 1
    r = np.float32(coin * cum[last])
    return int(order[_walk(sorted_p[: last + 1], r)])


class Sampler:
    def __init__(self, temperature: float, top_p: float, seed: int | None) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.rng = XorShiftRng(seed)

    def __call__(self, logits: np.ndarray) -> int:
        logits = np.asarray(logits, dtype=np.float32)
        if self.temperature == 0.0:
            return int(np.argmax(logits))  # first maximum wins
        probs = softmax_f32(logits / np.float32(self.temperature))
        coin = self.rng.next_f32()
        if self.top_p <= 0 or self.top_p >= 1:
            return _walk(probs, coin)
        return sample_top_p(probs, self.top_p, coin)
