"""The bridge between the torch `Transformer` and plain named fp32 tensors.

Every format writer takes a `Weights` (the model's shape plus its tensors under the trainer's
state-dict names) and every reader returns one, so the formats never touch nn.Module details.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from zhllama.errors import ZhllamaError

if TYPE_CHECKING:
    from zhllama_exporter.gguf_vocab import Vocab

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


@dataclass(frozen=True)
class Shape:
    """What a llama2.c header holds, plus the two fields the torch model needs besides."""

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

    def check(self, where: str) -> None:
        """Reject shapes no model can have, before any offset or allocation uses them."""
        ints = dataclasses.astuple(self)[:7]
        if any(v <= 0 for v in ints):
            raise ZhllamaError(f"{where}: implausible model shape {ints} (a value is not positive)")
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads or self.head_dim % 2:
            raise ZhllamaError(
                f"{where}: dim {self.dim}, {self.n_heads} heads and {self.n_kv_heads} kv heads "
                "do not fit together (dim % heads, heads % kv heads, even head size)"
            )

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


@dataclass
class Int8:
    """The int8 groups a llama2c-int8 file stored: name → (int8 values, fp32 scale per group)."""

    group_size: int
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Weights:
    """A model as data: its shape and fp32 CPU tensors by state-dict name. `int8` keeps the
    stored groups when the weights were read from an int8 file (a GGUF q8_0 export reuses them)."""

    shape: Shape
    tensors: dict[str, torch.Tensor]
    int8: Int8 | None = None

    def layer(self, name: str) -> list[torch.Tensor]:
        """One per-layer tensor (e.g. "attention.wq") for every layer, in layer order."""
        return [self.tensors[f"layers.{i}.{name}.weight"] for i in range(self.shape.n_layers)]

    def classifier(self) -> torch.Tensor:
        key = "tok_embeddings.weight" if self.shape.shared_classifier else "output.weight"
        return self.tensors[key]


@dataclass
class Loaded:
    """A model read from a file, as exporters take it: the weights, and what the source says
    about its tokenizer (the `.model` a ckpt.pt names, the vocabulary a GGUF holds)."""

    weights: Weights
    format: str  # "ckpt", "torch" (a model in memory) or an export format name
    path: Path | None = None  # the file it came from
    tokenizer: Path | None = None  # the trainer's tokenizer .model, when a ckpt.pt names one
    vocab: Vocab | None = None  # the tokenizer a GGUF file holds
    dtype: str = "fp32"  # how a gguf or int8 source stored its matrices (others: fp32)
    training: dict[str, Any] | None = None  # a ckpt.pt's iter_num, best_val_loss, best_iter


def as_loaded(model: Any) -> Loaded:
    """What an exporter's `export(model, out)` accepts, as one type: a torch Transformer (or its
    DDP / torch.compile wrapper), a `Weights`, or a `Loaded`."""
    if isinstance(model, Loaded):
        return model
    if isinstance(model, Weights):
        return Loaded(model, "weights")
    return Loaded(from_model(model), "torch")


def tokenizer_candidates(loaded: Loaded) -> list[Path]:
    """Where a source's tokenizer .model may be, in order: as the ckpt.pt records it (an
    absolute path, stale once the run folder moves), relative to the checkpoint's folder, then
    `tokenizer.model` beside the checkpoint (the copy a run folder keeps); for an HF directory
    first the `tokenizer.model` inside it."""
    if loaded.path is None:
        return []
    here = Path(loaded.path).parent
    places = [Path(loaded.path) / "tokenizer.model"] if Path(loaded.path).is_dir() else []
    if loaded.tokenizer is not None:
        places += [loaded.tokenizer, here / loaded.tokenizer, here / loaded.tokenizer.name]
    places.append(here / "tokenizer.model")
    return list(dict.fromkeys(places))


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The Transformer inside torch.compile's and DDP's wrappers (the trainer may pass either)."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def model_args_of(model: torch.nn.Module) -> Any:
    """The ModelArgs a Transformer was built with."""
    from zhllama_trainer.model import ModelArgs

    for attr in ("args", "params", "model_args", "config"):
        value = getattr(model, attr, None)
        if isinstance(value, ModelArgs):
            return value
    raise ZhllamaError(f"{type(model).__name__} carries no ModelArgs; is it a zhllama Transformer?")


def from_model(model: torch.nn.Module) -> Weights:
    """Take a Transformer's weights as fp32 CPU tensors."""
    model = unwrap(model)
    args = model_args_of(model)
    sd = model.state_dict()
    n_kv = args.n_kv_heads if args.n_kv_heads is not None else args.n_heads
    shared = bool(args.shared_classifier)
    shape = Shape(
        dim=args.dim,
        hidden_dim=int(sd["layers.0.feed_forward.w1.weight"].shape[0]),
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        n_kv_heads=n_kv,
        vocab_size=args.vocab_size,
        max_seq_len=args.max_seq_len,
        shared_classifier=shared,
        norm_eps=float(args.norm_eps),
    )
    tensors = {}
    for name, expect in shape.tensor_shapes().items():
        t = sd[name].detach().to("cpu", torch.float32).contiguous()
        if tuple(t.shape) != expect:
            raise ZhllamaError(f"model tensor {name} has shape {tuple(t.shape)}, expected {expect}")
        tensors[name] = t
    return Weights(shape, tensors)


def to_model(weights: Weights, where: str = "checkpoint") -> torch.nn.Module:
    """Build a Transformer holding exactly these weights."""
    from zhllama_trainer.model import ModelArgs, Transformer

    s = weights.shape
    args = ModelArgs(
        dim=s.dim,
        n_layers=s.n_layers,
        n_heads=s.n_heads,
        n_kv_heads=s.n_kv_heads,
        vocab_size=s.vocab_size,
        hidden_dim=s.hidden_dim,
        norm_eps=s.norm_eps,
        max_seq_len=s.max_seq_len,
        shared_classifier=s.shared_classifier,
    )
    model = Transformer(args)
    params = dict(model.named_parameters(remove_duplicate=False))
    expected = s.tensor_shapes()
    with torch.no_grad():
        for name, t in weights.tensors.items():
            if name not in params or tuple(t.shape) != expected.get(name):
                raise ZhllamaError(f"{where}: unexpected tensor {name} {tuple(t.shape)}")
            params[name].copy_(t)
    missing = sorted(set(expected) - set(weights.tensors))
    if missing:
        raise ZhllamaError(f"{where}: missing tensors {', '.join(missing[:5])}")
    model.eval()
    return model
