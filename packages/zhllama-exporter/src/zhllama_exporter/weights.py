"""The bridge between the torch `Transformer` and plain named fp32 tensors.

Every format writer takes a `Weights` (the model's shape plus its tensors under the trainer's
state-dict names) and every reader returns one, so the formats never touch nn.Module details.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from zhllama.errors import ZhllamaError

# The shape type is the trainer's (its architecture module, beside the torch model that is
# the one declared cross-stage import), so both stages check a shape by the same rules.
from zhllama_trainer.architecture import ModelShape

if TYPE_CHECKING:
    from zhllama_exporter.gguf_vocab import Vocab


@dataclass
class Int8:
    """The int8 groups a llama2c-int8 file stored: name → (int8 values, fp32 scale per group)."""

    group_size: int
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Weights:
    """A model as data: its shape and fp32 CPU tensors by state-dict name. `int8` keeps the
    stored groups when the weights were read from an int8 file (a GGUF q8_0 export reuses them)."""

    shape: ModelShape
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


def from_model(model: torch.nn.Module) -> Weights:
    """Take a Transformer's weights as fp32 CPU tensors."""
    from zhllama_trainer.model import Transformer

    model = unwrap(model)
    if not isinstance(model, Transformer):
        raise ZhllamaError(f"{type(model).__name__} is not a zhllama Transformer")
    shape = model.args.shape
    sd = model.state_dict()
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
    args = ModelArgs.of_shape(s)
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
