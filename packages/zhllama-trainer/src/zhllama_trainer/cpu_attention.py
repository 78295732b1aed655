"""Causal attention on the CPU through the engine's Rust kernel, for small heads.

torch's CPU flash-attention kernel is built for head sizes of 64 and up; with the `tiny`
preset's 8-dim heads it spends its time on per-block overhead, and attention took two thirds of
a training step. `zhllama_rs` (crates/zhllama-kernels/src/training_attention.rs) computes the
same thing with every inner loop running over keys, a few times faster on such heads
(tools/bench_train.py measures the whole step). It works in float32 (under bf16 autocast the
inputs are upcast: the kernel is not the bottleneck there) and handles grouped-query attention
without repeating keys and values. Gradients equal `scaled_dot_product_attention`'s to float
rounding (tested).
"""

from __future__ import annotations

import functools

import torch

# Up to this head size the kernel clearly wins (forward + backward, 2 threads, against SDPA:
# 3.1x at 8, 1.1x at 16, 0.9x at 32, 0.8x at 48).
MAX_HEAD_DIM = 8


@functools.cache
def _kernels():
    """The native module, or None when zhllama_rs is not installed (SDPA is used then)."""
    try:
        from zhllama_rs import ops
    except ImportError:
        return None
    return ops


def usable(q: torch.Tensor) -> bool:
    """True when `causal_attention` can take q (B, H, T, hs) here: CPU, small heads, kernel."""
    return q.device.type == "cpu" and q.size(-1) <= MAX_HEAD_DIM and _kernels() is not None


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(torch.float32).contiguous()


class _CausalAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        q32, k32, v32 = _f32(q), _f32(k), _f32(v)
        out = torch.empty_like(q32)
        lse = torch.empty(q32.shape[:3], dtype=torch.float32)
        threads = torch.get_num_threads()
        arrays = (q32.numpy(), k32.numpy(), v32.numpy(), out.numpy(), lse.numpy())
        _kernels().causal_attention_forward_f32(*arrays, threads=threads)
        ctx.save_for_backward(q32, k32, v32, out, lse)
        ctx.dtypes = (q.dtype, k.dtype, v.dtype)
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx, dout):
        q32, k32, v32, out, lse = ctx.saved_tensors
        dq, dk, dv = torch.empty_like(q32), torch.empty_like(k32), torch.empty_like(v32)
        arrays = [t.numpy() for t in (q32, k32, v32, out, lse, _f32(dout), dq, dk, dv)]
        _kernels().causal_attention_backward_f32(*arrays, threads=torch.get_num_threads())
        return tuple(g.to(dt) for g, dt in zip((dq, dk, dv), ctx.dtypes, strict=True))


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(hs) + causal mask) v for q (B, H, T, hs), k and v (B, Hk, T, hs).

    Query head h reads kv head h // (H / Hk). Check `usable(q)` first.
    """
    return _CausalAttention.apply(q, k, v)
