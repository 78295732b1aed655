"""The Rust CPU attention kernel against torch's scaled_dot_product_attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from zhllama_rs import ops
from zhllama_trainer import cpu_attention
from zhllama_trainer.model import ModelArgs, Transformer


def reference(q, k, v):
    rep = q.size(1) // k.size(1)
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@pytest.mark.parametrize(
    ("batch", "heads", "kv_heads", "seq", "head_dim"),
    [(2, 8, 4, 33, 8), (1, 4, 1, 7, 8), (3, 6, 6, 64, 16), (1, 2, 2, 1, 4), (2, 3, 3, 40, 6)],
)
def test_outputs_and_gradients_match_sdpa(batch, heads, kv_heads, seq, head_dim):
    gen = torch.Generator().manual_seed(seq)
    q = torch.randn(batch, heads, seq, head_dim, dtype=torch.float64, generator=gen)
    k = torch.randn(batch, kv_heads, seq, head_dim, dtype=torch.float64, generator=gen) * 3
    v = torch.randn(batch, kv_heads, seq, head_dim, dtype=torch.float64, generator=gen)
    up = torch.randn(batch, heads, seq, head_dim, dtype=torch.float64, generator=gen)
    want = [x.clone().requires_grad_() for x in (q, k, v)]
    ref = reference(*want)
    ref_grads = torch.autograd.grad((ref * up).sum(), want)

    got = [x.float().requires_grad_() for x in (q, k, v)]
    out = cpu_attention.causal_attention(*got)
    grads = torch.autograd.grad((out * up.float()).sum(), got)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-6)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.double(), r, rtol=0, atol=2e-5)


def test_bf16_inputs_give_bf16_outputs_and_gradients():
    q, k, v = (torch.randn(2, 4, 16, 8, dtype=torch.bfloat16, requires_grad=True) for _ in "qkv")
    out = cpu_attention.causal_attention(q, k, v)
    out.float().square().sum().backward()
    assert out.dtype == torch.bfloat16
    assert all(x.grad is not None and x.grad.dtype == torch.bfloat16 for x in (q, k, v))
    torch.testing.assert_close(
        out.float(), reference(q.float(), k.float(), v.float()), atol=1e-2, rtol=0
    )


def test_model_trains_the_same_with_either_kernel():
    """The tiny preset's shape (8-dim heads, grouped kv): one step with the Rust kernel and one
    with SDPA give the same loss and the same gradients."""
    args = ModelArgs(dim=64, n_layers=2, n_heads=8, n_kv_heads=4, vocab_size=300, max_seq_len=32)
    torch.manual_seed(0)
    tokens = torch.randint(0, 300, (3, 33))
    results = []
    for kernel in ("auto", "sdpa"):
        torch.manual_seed(1)
        model = Transformer(args)
        model.set_attention_kernel(kernel)
        _, loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        results.append((loss.item(), [p.grad.clone() for p in model.parameters()]))
    assert cpu_attention.usable(torch.zeros(1, 8, 2, 8))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, abs=1e-6)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_unknown_kernel_name_is_an_error():
    model = Transformer(ModelArgs(dim=16, n_layers=1, n_heads=2, vocab_size=10, max_seq_len=8))
    with pytest.raises(Exception, match="attention must be one of auto, sdpa"):
        model.set_attention_kernel("flash")


def test_bad_arrays_are_value_errors():
    q = np.zeros((1, 2, 4, 8), np.float32)
    kv = np.zeros((1, 1, 4, 8), np.float32)
    out, lse = np.zeros_like(q), np.zeros((1, 2, 4), np.float32)
    ops.causal_attention_forward_f32(q, kv, kv, out, lse)  # well formed: no error
    with pytest.raises(ValueError, match="must be C-contiguous"):
        ops.causal_attention_forward_f32(q[:, :, ::2], kv[:, :, ::2], kv[:, :, ::2], out, lse)
    with pytest.raises(ValueError, match="batch, seq and head size must agree"):
        ops.causal_attention_forward_f32(q, kv[:, :, :3], kv, out, lse)
    with pytest.raises(ValueError, match="lse holds 6 values"):
        ops.causal_attention_forward_f32(q, kv, kv, out, lse[:, :, :3].copy())
    with pytest.raises(ValueError, match="does not divide"):
        k3 = np.zeros((1, 3, 4, 8), np.float32)
        ops.causal_attention_forward_f32(np.zeros((1, 4, 4, 8), np.float32), k3, k3, out, lse)
    with pytest.raises(TypeError):
        ops.causal_attention_forward_f32(q.astype(np.float64), kv, kv, out, lse)
    with pytest.raises(ValueError, match="threads=5000: at most 1024"):
        ops.causal_attention_forward_f32(q, kv, kv, out, lse, threads=5000)
