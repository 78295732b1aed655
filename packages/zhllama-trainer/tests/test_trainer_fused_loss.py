"""The chunked classifier + cross-entropy of loss.py against the plain F.cross_entropy path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from zhllama_trainer.loss import linear_cross_entropy
from zhllama_trainer.model import ModelArgs, Transformer


def _grads(model: Transformer, tokens: torch.Tensor, targets: torch.Tensor, fused: bool):
    model.zero_grad(set_to_none=True)
    if fused:
        _, loss = model(tokens, targets)
    else:
        logits = model(tokens)
        loss = F.cross_entropy(
            logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
        )
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("tied", [True, False])
def test_model_loss_and_grads_match_plain_cross_entropy(tied: bool) -> None:
    torch.manual_seed(0)
    args = ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=300,
                     max_seq_len=64, shared_classifier=tied)  # fmt: skip
    model = Transformer(args)
    tokens = torch.randint(0, 300, (3, 50))
    targets = torch.randint(0, 300, (3, 50))
    targets[0, :7] = -1  # ignored positions
    want_loss, want = _grads(model, tokens, targets, fused=False)
    got_loss, got = _grads(model, tokens, targets, fused=True)
    assert (model.output.weight is model.tok_embeddings.weight) == tied
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=0)
    for name, g in want.items():
        torch.testing.assert_close(got[name], g, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_function_grads_wrt_hidden_and_weight(chunk: int) -> None:
    torch.manual_seed(1)
    h = torch.randn(150, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(40, 16, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 40, (150,))
    t[::5] = -1
    ref = F.cross_entropy(h @ w.t(), t, ignore_index=-1)
    gh, gw = torch.autograd.grad(ref * 3, (h, w))
    h32, w32 = h.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    got = linear_cross_entropy(h32, w32, t, chunk=chunk)
    fh, fw = torch.autograd.grad(got * 3, (h32, w32))
    torch.testing.assert_close(got.double(), ref.detach(), rtol=1e-5, atol=0)
    torch.testing.assert_close(fh.double(), gh, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fw.double(), gw, rtol=1e-5, atol=1e-7)


def test_no_grad_and_bf16_autocast() -> None:
    torch.manual_seed(2)
    h = torch.randn(100, 16, requires_grad=True)
    w = torch.randn(40, 16, requires_grad=True)
    t = torch.randint(0, 40, (100,))
    ref = F.cross_entropy(h @ w.t(), t)
    with torch.no_grad():
        plain = linear_cross_entropy(h, w, t, chunk=32)
    assert not plain.requires_grad
    torch.testing.assert_close(plain, ref.detach(), rtol=1e-5, atol=0)
    gh, gw = torch.autograd.grad(ref, (h, w))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = linear_cross_entropy(h, w, t, chunk=32)
    assert got.dtype == torch.float32
    fh, fw = torch.autograd.grad(got, (h, w))
    assert fh.dtype == fw.dtype == torch.float32
    torch.testing.assert_close(got, ref.detach(), rtol=2e-2, atol=0)
    torch.testing.assert_close(fh, gh, rtol=5e-2, atol=2e-3)
    torch.testing.assert_close(fw, gw, rtol=5e-2, atol=2e-3)
