"""The Llama model of FORMATS.md §1.4 in torch, as llama2.c trains it.

Pre-norm residual blocks: RMSNorm → grouped-query attention with RoPE on adjacent pairs →
RMSNorm → SwiGLU feed-forward; a final RMSNorm and a classifier tied to the token embedding.
Parameter names match llama2.c's `model.py`, which the exporters rely on.

Shapes in comments: B batch, T sequence, D dim, H heads, Hk kv heads, hs head size, V vocab.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from zhllama.errors import ZhllamaError

from zhllama_trainer import cpu_attention
from zhllama_trainer.architecture import ATTENTION_KERNELS, ModelShape
from zhllama_trainer.loss import linear_cross_entropy


@dataclass
class ModelArgs:
    """How to build a Transformer: the shape as a user sets it (kv heads and hidden width may
    be left to their defaults) plus dropout. `shape` resolves it into the `ModelShape` that the
    exporter and the training config check by the same rules."""

    dim: int = 288
    n_layers: int = 6
    n_heads: int = 6
    n_kv_heads: int | None = None  # None: as many as n_heads (plain multi-head attention)
    vocab_size: int = 5000
    hidden_dim: int | None = None  # None: 8/3·dim rounded up to multiple_of
    multiple_of: int = 32
    norm_eps: float = 1e-5
    max_seq_len: int = 256
    dropout: float = 0.0
    shared_classifier: bool = True

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def of_shape(cls, s: ModelShape) -> ModelArgs:
        return cls(**dataclasses.asdict(s))  # every field of the shape is one of ours

    def validate(self) -> None:
        """Raise ZhllamaError for shapes the architecture cannot have."""
        if self.multiple_of <= 0:
            raise ZhllamaError(f"model multiple_of must be positive, not {self.multiple_of}")
        self.shape.check("model")
        if not 0.0 <= self.dropout < 1.0:
            raise ZhllamaError(f"dropout must be in [0, 1), not {self.dropout}")

    @property
    def shape(self) -> ModelShape:
        return ModelShape(
            dim=self.dim,
            hidden_dim=self.hidden,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            n_kv_heads=self.kv_heads,
            vocab_size=self.vocab_size,
            max_seq_len=self.max_seq_len,
            shared_classifier=self.shared_classifier,
            norm_eps=self.norm_eps,
        )

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def head_dim(self) -> int:
        return self.shape.head_dim

    @property
    def kv_dim(self) -> int:
        return self.shape.kv_dim

    @property
    def hidden(self) -> int:
        if self.hidden_dim is not None:
            return self.hidden_dim
        m = self.multiple_of
        return m * math.ceil(int(8 * self.dim / 3) / m)


class RMSNorm(nn.Module):
    """x · w / sqrt(mean(x²) + eps), computed in float32 whatever the autocast dtype."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def rope_tables(head_dim: int, seq_len: int, theta: float = 10000.0) -> torch.Tensor:
    """cos and sin, stacked (2, T, hs/2): pair i of a head turns at 1 / theta^(2i/hs) per step.
    Computed as llama2.c's model.py does (float32 frequencies, cos / sin of their outer
    product), so the v0 export's tables match llama2.c's bit for bit."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), freqs)  # (T, hs/2)
    return torch.stack([angles.cos(), angles.sin()])


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2i], x[2i+1]) of each head. x (B, T, heads, hs); cos (T, hs/2)."""
    # A pair is the complex number x[2i] + i·x[2i+1] and the rotation one complex multiply:
    # (x0 cos - x1 sin, x0 sin + x1 cos), in a single kernel (3-4x faster than real arithmetic).
    z = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())
    rot = torch.complex(cos, sin)[:, None, :]  # (T, 1, hs/2), broadcast over heads
    return torch.view_as_real(z * rot).flatten(-2).type_as(x)


@dataclass
class KVCache:
    """Keys and values of past positions, per layer (B, Hk, max_seq_len, hs)."""

    k: list[torch.Tensor] = field(default_factory=list)
    v: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def empty(cls, args: ModelArgs, batch: int, device: torch.device, dtype: torch.dtype):
        shape = (batch, args.kv_heads, args.max_seq_len, args.head_dim)
        return cls(
            [torch.zeros(shape, device=device, dtype=dtype) for _ in range(args.n_layers)],
            [torch.zeros(shape, device=device, dtype=dtype) for _ in range(args.n_layers)],
        )


class Attention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.kv_heads, args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.kv_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.kv_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)
        self.dropout = args.dropout
        self.resid_dropout = nn.Dropout(args.dropout)
        self.kernel = "auto"  # see Transformer.set_attention_kernel

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        start_pos: int = 0,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.n_heads, self.head_dim)
        k = self.wk(x).view(B, T, self.n_kv_heads, self.head_dim)
        v = self.wv(x).view(B, T, self.n_kv_heads, self.head_dim)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, hs)

        if cache is None and T > 1 and self._own_kernel(q):
            y = cpu_attention.causal_attention(q, k, v)  # (B, H, T, hs)
            y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
            return self.resid_dropout(self.wo(y))

        mask, causal = None, True
        if cache is not None:
            # Store this chunk's keys and values, then attend over every position so far.
            ck, cv = cache
            ck[:B, :, start_pos : start_pos + T] = k
            cv[:B, :, start_pos : start_pos + T] = v
            k, v = ck[:B, :, : start_pos + T], cv[:B, :, : start_pos + T]
            if start_pos > 0:
                causal = False
                if T > 1:  # query t may see keys up to start_pos + t
                    pos = torch.arange(start_pos + T, device=x.device)
                    mask = pos[None, :] <= (start_pos + torch.arange(T, device=x.device))[:, None]

        # Grouped-query attention: query head j reads kv head j // (H / Hk).
        rep = self.n_heads // self.n_kv_heads
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal and mask is None and T > 1,
        )  # (B, H, T, hs), scores scaled by 1/sqrt(hs)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        return self.resid_dropout(self.wo(y))

    def _own_kernel(self, q: torch.Tensor) -> bool:
        """Whether to use zhllama's CPU kernel (small heads, no attention dropout) over SDPA.
        Not under torch.compile, which cannot trace into the native call (a graph break)."""
        no_dropout = self.dropout == 0.0 or not self.training
        compiling = torch.compiler.is_compiling()
        return self.kernel == "auto" and no_dropout and not compiling and cpu_attention.usable(q)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) ⊙ w3 x)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.w1 = nn.Linear(args.dim, args.hidden, bias=False)
        self.w2 = nn.Linear(args.hidden, args.dim, bias=False)
        self.w3 = nn.Linear(args.dim, args.hidden, bias=False)
        self.dropout = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x, cos, sin, cache=None, start_pos: int = 0) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), cos, sin, cache, start_pos)
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        args.validate()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.dropout = nn.Dropout(args.dropout)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        if args.shared_classifier:
            self.output.weight = self.tok_embeddings.weight  # one tensor, two names
        # Not saved in state_dict: recomputed from the shape, as every engine does.
        self.register_buffer("rope", rope_tables(args.head_dim, args.max_seq_len), persistent=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init for the projections that write into the residual stream.
        std = 0.02 / math.sqrt(2 * args.n_layers)
        for name, p in self.named_parameters():
            if name.endswith(("w3.weight", "wo.weight")):
                nn.init.normal_(p, mean=0.0, std=std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def set_attention_kernel(self, name: str) -> None:
        """`auto`: zhllama's CPU kernel where it is faster (small heads on a CPU, see
        cpu_attention.py), else `scaled_dot_product_attention`; `sdpa`: always SDPA."""
        if name not in ATTENTION_KERNELS:
            raise ZhllamaError(
                f"attention must be one of {', '.join(ATTENTION_KERNELS)}, not {name}"
            )
        for layer in self.layers:
            layer.attention.kernel = name

    def num_params(self) -> int:
        """Parameters counted once (the tied classifier is the embedding)."""
        return sum(p.numel() for p in self.parameters())

    def _trunk(self, tokens: torch.Tensor, cache: KVCache | None, start_pos: int) -> torch.Tensor:
        T = tokens.shape[1]
        if start_pos + T > self.args.max_seq_len:
            raise ZhllamaError(
                f"sequence of {start_pos + T} tokens exceeds max_seq_len={self.args.max_seq_len}"
            )
        cos, sin = self.rope[:, start_pos : start_pos + T]
        h = self.dropout(self.tok_embeddings(tokens))  # (B, T, D)
        for i, layer in enumerate(self.layers):
            kv = (cache.k[i], cache.v[i]) if cache is not None else None
            h = layer(h, cos, sin, kv, start_pos)
        return self.norm(h)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) for every position; with `targets`, (None, mean cross-entropy).

        Targets of -1 are ignored in the loss.
        """
        h = self._trunk(tokens, None, 0)
        if targets is None:
            return self.output(h)
        # The loss without materialising the logits (see loss.py); no caller needs them.
        loss = linear_cross_entropy(
            h.reshape(-1, h.size(-1)), self.output.weight, targets.reshape(-1), ignore_index=-1
        )
        return None, loss

    @torch.inference_mode()
    def forward_cached(self, tokens: torch.Tensor, cache: KVCache, start_pos: int) -> torch.Tensor:
        """Run `tokens` (B, T) at positions start_pos.. through the cache; last logits (B, V)."""
        h = self._trunk(tokens, cache, start_pos)
        return self.output(h[:, -1, :]).float()

    def new_cache(self, batch: int = 1) -> KVCache:
        w = self.tok_embeddings.weight
        return KVCache.empty(self.args, batch, w.device, w.dtype)

    @torch.inference_mode()
    def generate(
        self,
        tokens: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Extend `tokens` (B, T) by up to `max_new_tokens`, with a KV cache; a quick sampler.

        The bit-exact llama2.c sampler (xorshift RNG, top-p) is the `torch` engine's.
        """
        B, T = tokens.shape
        steps = min(max_new_tokens, self.args.max_seq_len - T)
        cache = self.new_cache(B)
        logits = self.forward_cached(tokens, cache, 0)
        out = tokens
        for i in range(steps):
            if temperature == 0.0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, -float("inf"))
                probs = F.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            out = torch.cat([out, nxt], dim=1)
            if eos_id is not None and bool((nxt == eos_id).all()):
                break
            if i + 1 < steps:
                logits = self.forward_cached(nxt, cache, T + i)
        return out


def flops_per_token(args: ModelArgs, seq_len: int, num_params: int) -> float:
    """Training FLOPs per token (forward + backward): 6·N plus attention, as in PaLM's appendix."""
    return 6.0 * num_params + 12.0 * args.n_layers * args.dim * seq_len
