"""The Llama architecture as data (FORMATS.md §1.4): a model's shape, the rules a shape must
keep, and its tensors by state-dict name.

Light module (no torch): the training config checks its settings with it, the torch model is
built from it, and the exporter (which imports the torch model anyway) reads and writes every
format through `ModelShape`, so the rules live in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from zhllama.errors import ZhllamaError

# How the model computes attention (Transformer.set_attention_kernel).
ATTENTION_KERNELS = ("auto", "sdpa")

# Per-layer tensors, in the order llama2.c writes them.
LAYER_NORMS = ("attention_norm", "ffn_norm")
LAYER_MATRICES = (
    "attention.wq",
    "attention.wk",
    "attention.wv",
    "attention.wo",
    "feed_forward.w1",
    "feed_forward.w2",
    "feed_forward.w3",
)


def check_heads(dim: int, n_heads: int, n_kv_heads: int, where: str = "model") -> None:
    """Heads split dim into even-sized heads (RoPE turns pairs); kv heads divide the heads."""
    if n_heads <= 0 or dim % n_heads:
        raise ZhllamaError(f"{where}: n_heads={n_heads} does not divide dim={dim}")
    if (dim // n_heads) % 2:
        raise ZhllamaError(f"{where}: head size dim/n_heads={dim // n_heads} must be even for RoPE")
    if n_kv_heads <= 0 or n_heads % n_kv_heads:
        raise ZhllamaError(f"{where}: n_kv_heads={n_kv_heads} must divide n_heads={n_heads}")


@dataclass(frozen=True)
class ModelShape:
    """What a llama2.c header holds, plus the norm epsilon: every size resolved."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    max_seq_len: int
    shared_classifier: bool = True
    norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    def check(self, where: str = "model") -> None:
        """Reject shapes no model can have, before any offset or allocation uses them."""
        for f in dataclasses.fields(self)[:7]:
            value = getattr(self, f.name)
            if value <= 0:
                raise ZhllamaError(
                    f"{where}: {f.name} must be positive, not {value} (implausible model shape)"
                )
        check_heads(self.dim, self.n_heads, self.n_kv_heads, where)

    def matrix_shapes(self) -> dict[str, tuple[int, int]]:
        d, h, kvd = self.dim, self.hidden_dim, self.kv_dim
        return {
            "attention.wq": (d, d),
            "attention.wk": (kvd, d),
            "attention.wv": (kvd, d),
            "attention.wo": (d, d),
            "feed_forward.w1": (h, d),
            "feed_forward.w2": (d, h),
            "feed_forward.w3": (h, d),
        }

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor of the model by state-dict name (output.weight only when not shared)."""
        d, V = self.dim, self.vocab_size
        shapes: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (V, d)}
        for i in range(self.n_layers):
            for norm in LAYER_NORMS:
                shapes[f"layers.{i}.{norm}.weight"] = (d,)
            for name, shape in self.matrix_shapes().items():
                shapes[f"layers.{i}.{name}.weight"] = shape
        shapes["norm.weight"] = (d,)
        if not self.shared_classifier:
            shapes["output.weight"] = (V, d)
        return shapes
