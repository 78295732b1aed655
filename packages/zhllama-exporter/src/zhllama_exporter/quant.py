"""Q8_0 quantization: groups of GS consecutive values share one fp32 scale (FORMATS.md §1.3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from zhllama.errors import ZhllamaError

DEFAULT_GROUP_SIZE = 64


def choose_group_size(dim: int, hidden_dim: int, requested: int | None = None) -> int:
    """The group size for a model: `requested` if it divides dim and hidden, else an error;
    by default the largest of 64, 32, 16, ... that divides both (the usual writer only checks
    dim, which for hidden 1376 makes readers drop values)."""
    if requested is not None:
        if requested <= 0 or dim % requested or hidden_dim % requested:
            raise ZhllamaError(
                f"group size {requested} must be positive and divide both dim {dim} and "
                f"hidden {hidden_dim}"
            )
        return requested
    gs = DEFAULT_GROUP_SIZE
    while gs > 1 and (dim % gs or hidden_dim % gs):
        gs //= 2
    return gs


def quantize(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (int8 values with w's shape, fp32 scales, one per group)."""
    if w.numel() % group_size:
        raise ZhllamaError(f"{w.numel()} values do not split into groups of {group_size}")
    groups = w.detach().to(torch.float32).reshape(-1, group_size)
    scale = groups.abs().amax(dim=1) / 127.0
    # An all-zero group has scale 0: keep its values 0 instead of dividing by zero.
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(groups / safe[:, None]).clamp_(-127, 127).to(torch.int8)
    return q.reshape(w.shape), scale


def dequantize(q: torch.Tensor, scale: torch.Tensor, group_size: int) -> torch.Tensor:
    groups = q.to(torch.float32).reshape(-1, group_size) * scale[:, None]
    return groups.reshape(q.shape)


@dataclass(frozen=True)
class QuantError:
    """How far a tensor's values moved through int8.

    Rounding moves a value at most half its group's scale, so `ratio` (the worst group's error
    divided by its scale / 2) must stay at or below 1, up to float rounding.
    """

    name: str
    max_abs: float
    mean_abs: float
    ratio: float

    @property
    def within_bound(self) -> bool:
        return self.ratio <= 1 + 1e-4


def quant_error(name: str, w: torch.Tensor, group_size: int) -> QuantError:
    q, scale = quantize(w, group_size)
    w32 = w.detach().to(torch.float32)
    err = (dequantize(q, scale, group_size) - w32).abs().reshape(-1, group_size)
    half = scale / 2
    group_max = err.amax(dim=1)
    ratio = torch.where(half > 0, group_max / torch.where(half > 0, half, 1.0), group_max * 1e30)
    return QuantError(name, err.amax().item(), err.mean().item(), ratio.amax().item())
