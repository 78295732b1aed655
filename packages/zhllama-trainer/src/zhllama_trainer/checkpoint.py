"""ckpt.pt: the trainer's checkpoint, written atomically and read back with clear errors.

A checkpoint is a `torch.save`d dict, its keys documented in zhllama-trainer's README
("ckpt.pt"): "model" (state_dict), "model_args" (asdict(ModelArgs)), "config" (the train config
as a dict), "iter_num", "best_val_loss", "best_iter", "optimizer", "rng", "data_state",
"tokenizer" (path of the tokenizer .model, or None) and "tokenizer_sha256".
Everything in it is plain data (tensors, numbers, strings, dicts), so it loads with
`weights_only=True` and no pickled code ever runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from zhllama.atomic import atomic_open
from zhllama.errors import ZhllamaError

from zhllama_trainer.model import ModelArgs, Transformer

REQUIRED_KEYS = ("model", "model_args")


def save_checkpoint(path: str | Path, ckpt: dict[str, Any]) -> None:
    """torch.save `ckpt` to `path` through a temporary file, so a kill never leaves half a file."""
    with atomic_open(path, "wb") as f:
        torch.save(ckpt, f)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a ckpt.pt dict; ZhllamaError naming the file when it is missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ZhllamaError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ZhllamaError(f"{path}: not a readable zhllama checkpoint ({type(e).__name__})") from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise ZhllamaError(f"{path}: not a zhllama checkpoint (needs keys {REQUIRED_KEYS})")
    return ckpt


def model_args_from(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> ModelArgs:
    known = {f.name for f in dataclasses.fields(ModelArgs)}
    raw = ckpt["model_args"]
    if not isinstance(raw, dict):
        raise ZhllamaError(f"{path}: model_args is not a dict")
    try:
        return ModelArgs(**{k: v for k, v in raw.items() if k in known})
    except TypeError as e:
        raise ZhllamaError(f"{path}: bad model_args: {e}") from None


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the prefixes torch.compile ("_orig_mod.") and DDP ("module.") add to names."""
    out = {}
    for k, v in state.items():
        for prefix in ("_orig_mod.", "module."):
            while k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[Transformer, ModelArgs]:
    """The model of a ckpt.pt, in eval mode on `device`, and its ModelArgs."""
    model = model_from_checkpoint(load_checkpoint(path, device="cpu"), path)
    return model.to(device).eval(), model.args


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Transformer:
    """Build the Transformer of an already loaded ckpt.pt dict (`path` is for messages)."""
    model = Transformer(model_args_from(ckpt, path))
    state = clean_state_dict(ckpt["model"])
    if model.args.shared_classifier:
        state.setdefault("output.weight", state.get("tok_embeddings.weight"))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ZhllamaError(f"{path}: weights do not fit the model shape: {first}") from None
    return model
