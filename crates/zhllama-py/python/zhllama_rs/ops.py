"""Training kernels of the Rust core, over numpy arrays (zero-copy views of torch tensors).

The trainer's CPU fast path for attention with small heads (zhllama_trainer/cpu_attention.py)
calls these; see crates/zhllama-kernels/src/training_attention.rs for what they compute and why.

- `causal_attention_forward_f32(q, k, v, out, lse, threads=0)`: q (B, H, T, hs), k and v
  (B, Hk, T, hs) with Hk dividing H; writes out (B, H, T, hs) and lse (B, H, T), the log of
  each row's softmax denominator. Scores are scaled by 1/sqrt(hs); position i sees 0..=i.
- `causal_attention_backward_f32(q, k, v, out, lse, dout, dq, dk, dv, threads=0)`: overwrites
  dq, dk, dv with the gradients for the upstream gradient dout.

Every array must be C-contiguous float32; a wrong shape or layout is a ValueError. The GIL is
released while they run; `threads=0` means one thread per physical core.
"""

from zhllama_rs._native import causal_attention_backward_f32, causal_attention_forward_f32

__all__ = ["causal_attention_backward_f32", "causal_attention_forward_f32"]
