"""Classifier + cross-entropy in one pass over row chunks, never holding the full logits.

With a 5000-token vocabulary and a small model, the (B·T, V) logits, their log-softmax and the
backward's copies are most of a training step's memory traffic. Here the loss is computed
`chunk` rows at a time, and for each chunk the gradient of the loss wrt the hidden states and
the classifier weight (softmax − one-hot) is computed at once, while the logits are still in
cache; backward only scales the stored gradients. Exact up to float summation order.
"""

from __future__ import annotations

import torch

CHUNK = 512


def _compute_dtype(device_type: str) -> torch.dtype:
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return torch.float32


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, targets, ignore_index, chunk, dtype, want_h, want_w):  # noqa: PLR0913
        n = h.shape[0]
        valid = targets != ignore_index
        count = valid.sum()
        hc, wc = h.to(dtype), weight.to(dtype)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=h.device) if want_w else None
        scale = 1.0 / count.clamp(min=1).to(torch.float32)
        for s in range(0, n, chunk):
            x, t, ok = hc[s : s + chunk], targets[s : s + chunk], valid[s : s + chunk]
            logits = (x @ wc.t()).float()  # (C, V)
            safe_t = t.clamp(min=0).unsqueeze(1)
            # One exp per logit: shift by the row max in place, exponentiate, normalise.
            top = logits.amax(dim=1, keepdim=True)
            picked = logits.gather(1, safe_t).squeeze(1) - top.squeeze(1)
            g = logits.sub_(top).exp_()
            sums = g.sum(dim=1)
            total += ((sums.log() - picked) * ok).sum()
            if not (want_h or want_w):
                continue
            # softmax − one-hot, in place over the logits, zero on ignored rows, times 1/count.
            g.mul_((ok.to(torch.float32) * scale / sums).unsqueeze(1))
            g.scatter_add_(1, safe_t, (-(ok.to(torch.float32) * scale)).unsqueeze(1))
            g = g.to(dtype)
            if want_h:
                grad_h[s : s + chunk] = (g @ wc).to(h.dtype)
            if want_w:
                if dtype == torch.float32:
                    grad_w.addmm_(g.t(), x)
                else:
                    grad_w += g.t() @ x
        ctx.save_for_backward(grad_h, grad_w)
        ctx.wdtype = weight.dtype
        return total * scale

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.wdtype) if grad_w is not None else None
        return gh, gw, None, None, None, None, None, None


def linear_cross_entropy(
    h: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -1,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """Mean cross-entropy of logits h @ weightᵀ (h (N, D), weight (V, D), targets (N,)).

    Under autocast the matrix products run in the autocast dtype and the softmax in float32,
    as `F.cross_entropy(F.linear(h, weight).float(), targets)` would.
    """
    dtype = _compute_dtype(h.device.type)
    grad = torch.is_grad_enabled()
    want_h, want_w = grad and h.requires_grad, grad and weight.requires_grad
    with torch.autocast(h.device.type, enabled=False):
        return _LinearCrossEntropy.apply(
            h, weight, targets, ignore_index, chunk, dtype, want_h, want_w
        )
