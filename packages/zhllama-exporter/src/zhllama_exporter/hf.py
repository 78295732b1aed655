"""HuggingFace `LlamaForCausalLM` directories (FORMATS.md §5): write and read.

The directory holds `model.safetensors` in the requested dtype, `config.json`,
`generation_config.json` (BOS 1, EOS 2) and, given a sentencepiece model, the tokenizer files,
so `AutoModelForCausalLM.from_pretrained(dir)` and `AutoTokenizer.from_pretrained(dir)` work.
HF's rotary embedding pairs element i with i + hs/2 where llama2.c pairs 2i with 2i+1, so the
rows of wq and wk are permuted per head (wk over the kv heads, which is what makes GQA work).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from zhllama.atomic import atomic_write_bytes, read_json
from zhllama.errors import ZhllamaError
from zhllama_trainer.architecture import ModelShape

from zhllama_exporter.weights import Weights

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
BOS_ID, EOS_ID = 1, 2
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

# Trainer name → HF name, per layer.
LAYER_NAMES = {
    "attention_norm": "input_layernorm",
    "attention.wq": "self_attn.q_proj",
    "attention.wk": "self_attn.k_proj",
    "attention.wv": "self_attn.v_proj",
    "attention.wo": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "feed_forward.w1": "mlp.gate_proj",
    "feed_forward.w2": "mlp.down_proj",
    "feed_forward.w3": "mlp.up_proj",
}
TOP_NAMES = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


def to_hf_rows(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Interleaved pairs (2i, 2i+1) → HF halves (i, i + hs/2), per head: (heads·hs, d)."""
    rows, cols = w.shape
    return w.view(heads, rows // heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def from_hf_rows(w: torch.Tensor, heads: int) -> torch.Tensor:
    """The inverse of `to_hf_rows`."""
    rows, cols = w.shape
    return w.view(heads, 2, rows // heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def hf_name(name: str) -> str:
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    _, i, rest = name.split(".", 2)  # layers.{i}.{rest}
    return f"model.layers.{i}.{LAYER_NAMES[rest.removesuffix('.weight')]}.weight"


def config_json(s: ModelShape, dtype: str) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": s.dim,
        "intermediate_size": s.hidden_dim,
        "num_hidden_layers": s.n_layers,
        "num_attention_heads": s.n_heads,
        "num_key_value_heads": s.n_kv_heads,
        "head_dim": s.head_dim,
        "vocab_size": s.vocab_size,
        "max_position_embeddings": s.max_seq_len,
        "rms_norm_eps": s.norm_eps,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "hidden_act": "silu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "tie_word_embeddings": s.shared_classifier,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "use_cache": True,
        # transformers 4 reads torch_dtype and rope_theta, 5 reads dtype and rope_parameters
        "torch_dtype": DTYPE_NAMES[dtype],
        "dtype": DTYPE_NAMES[dtype],
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    }


def generation_config_json() -> dict[str, Any]:
    # No max_length: transformers warns when it meets max_new_tokens, which callers pass.
    return {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID}


def hf_tensors(w: Weights, dtype: str) -> dict[str, torch.Tensor]:
    s = w.shape
    target = TORCH_DTYPES[dtype]
    out = {}
    for name, t in w.tensors.items():
        if name.endswith("attention.wq.weight"):
            t = to_hf_rows(t, s.n_heads)
        elif name.endswith("attention.wk.weight"):
            t = to_hf_rows(t, s.n_kv_heads)
        if target == torch.float16 and t.abs().max().item() > torch.finfo(torch.float16).max:
            raise ZhllamaError(f"tensor {name} has values beyond fp16's range; use bf16 or fp32")
        out[hf_name(name)] = t.to(target).contiguous()  # a copy: safetensors refuses shared ones
    return out


def write_hf(w: Weights, out_dir: Path, dtype: str) -> None:
    """Fill `out_dir` (an empty, temporary directory) with the model files."""
    from safetensors.torch import save

    # Serialized here and written by Python, not by save_file: its Rust writer reports a full
    # disk as a SafetensorError, which cannot be told from a bad tensor; atomic_write_bytes
    # raises an OSError naming the file, which atomic_dir renames after the target. (It costs
    # one copy of the weights in memory.)
    data = save(hf_tensors(w, dtype), metadata={"format": "pt"})
    atomic_write_bytes(out_dir / WEIGHTS_FILE, data)
    (out_dir / "config.json").write_text(json.dumps(config_json(w.shape, dtype), indent=2) + "\n")
    gen = json.dumps(generation_config_json(), indent=2) + "\n"
    (out_dir / "generation_config.json").write_text(gen)


# ---------------------------------------------------------------------------------- reading


def _load_config(path: Path) -> dict[str, Any]:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ZhllamaError(f"{path}: not a HuggingFace model directory (no config.json)")
    cfg = read_json(cfg_path)
    if cfg.get("model_type") != "llama":
        raise ZhllamaError(f"{cfg_path}: model_type is {cfg.get('model_type')!r}, not 'llama'")
    # What zhllama's model cannot express must not be silently dropped.
    unsupported = {
        "hidden_act": ("silu",),
        "rope_theta": (10000, 10000.0, None),
        "rope_scaling": (None,),
        "attention_bias": (False, None),
        "mlp_bias": (False, None),
    }
    rope = cfg.get("rope_parameters") or {}
    checks = {**cfg, **{f"rope_parameters.{k}": v for k, v in rope.items()}}
    unsupported["rope_parameters.rope_theta"] = unsupported["rope_theta"]
    unsupported["rope_parameters.rope_type"] = ("default", None)
    for key, allowed in unsupported.items():
        if checks.get(key) not in allowed:
            raise ZhllamaError(f"{cfg_path}: {key}={checks.get(key)!r} is not supported by zhllama")
    return cfg


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if (path / INDEX_FILE).is_file():
        index = read_json(path / INDEX_FILE)
        files = sorted(set(index.get("weight_map", {}).values()))
    elif (path / WEIGHTS_FILE).is_file():
        files = [WEIGHTS_FILE]
    else:
        raise ZhllamaError(f"{path}: no {WEIGHTS_FILE} (only safetensors weights are read)")
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        try:
            tensors.update(load_file(str(path / name)))
        except (SafetensorError, OSError) as e:
            raise ZhllamaError(f"{path / name}: not a readable safetensors file ({e})") from None
    return tensors


def read_hf(path: Path) -> Weights:
    path = Path(path)
    cfg = _load_config(path)
    try:
        H = int(cfg["num_attention_heads"])
        s = ModelShape(
            dim=int(cfg["hidden_size"]),
            hidden_dim=int(cfg["intermediate_size"]),
            n_layers=int(cfg["num_hidden_layers"]),
            n_heads=H,
            n_kv_heads=int(cfg.get("num_key_value_heads") or H),
            vocab_size=int(cfg["vocab_size"]),
            max_seq_len=int(cfg["max_position_embeddings"]),
            shared_classifier=bool(cfg.get("tie_word_embeddings", True)),
            norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ZhllamaError(f"{path / 'config.json'}: missing or bad field {e}") from None
    s.check(str(path))
    if cfg.get("head_dim") not in (None, s.head_dim):
        raise ZhllamaError(f"{path}: head_dim {cfg['head_dim']} is not hidden_size / heads")
    raw = _load_tensors(path)
    tensors = {}
    for name, shape in s.tensor_shapes().items():
        key = hf_name(name)
        if key not in raw:
            raise ZhllamaError(f"{path}: tensor {key} is missing")
        t = raw.pop(key).to(torch.float32)
        if tuple(t.shape) != shape:
            raise ZhllamaError(f"{path}: {key} has shape {tuple(t.shape)}, expected {shape}")
        if name.endswith("attention.wq.weight"):
            t = from_hf_rows(t, s.n_heads)
        elif name.endswith("attention.wk.weight"):
            t = from_hf_rows(t, s.n_kv_heads)
        tensors[name] = t.contiguous()
    raw.pop("lm_head.weight", None)  # a tied model may still store its copy
    extra = [k for k in raw if not k.endswith("rotary_emb.inv_freq")]
    if extra:
        raise ZhllamaError(f"{path}: unexpected tensors {', '.join(sorted(extra)[:5])}")
    return Weights(s, tensors)
