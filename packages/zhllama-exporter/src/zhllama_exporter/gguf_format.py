"""GGUF, the format of llama.cpp and the tools built on it (FORMATS.md §6), written and read with
the `gguf` package (llama.cpp's own reader/writer).

The mapping: architecture `llama`; the llama2.c layout of wq/wk is the one llama.cpp expects, so
no rotary permutation; a `[out, in]` matrix is handed over as that numpy array. Norm weights stay
f32 whatever the dtype. `q8_0` is llama.cpp's blocks of 32 (an f16 scale and 32 int8): from
fp32 weights they are made by gguf's quantizer (bit-exact with ggml's); from a llama2c-int8 file
whose group size is a multiple of 32, the file's int8 values are kept and each block takes its
group's scale (rounded to f16), so nothing is quantized twice. A group size that is not a
multiple of 32 cannot map and is refused (quantizing an already quantized model again would only
add error; export q8_0 from the fp32 source instead). A matrix whose rows are not a multiple of
32 long cannot be q8_0 at all and is stored f16, as llama.cpp's own quantizer falls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch
from zhllama.atomic import atomic_path
from zhllama.errors import ZhllamaError
from zhllama_trainer.architecture import LAYER_MATRICES, LAYER_NORMS, ModelShape

from zhllama_exporter.gguf_vocab import Vocab, from_gguf_fields, load_vocab
from zhllama_exporter.weights import Loaded, Weights, tokenizer_candidates

ARCH = "llama"
ROPE_BASE = 10000.0
Q8_BLOCK = 32
T = gguf.GGMLQuantizationType
# --dtype spellings: llama.cpp's names, and the exporter's fp32/fp16 for the same thing
DTYPE_ALIASES = {
    "f32": "f32",
    "fp32": "f32",
    "f16": "f16",
    "fp16": "f16",
    "bf16": "bf16",
    "q8_0": "q8_0",
}
GGUF_DTYPES = ("f32", "f16", "bf16", "q8_0")
_FILE_TYPES = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}
_LAYER_NAMES = {
    "attention_norm": "attn_norm",
    "ffn_norm": "ffn_norm",
    "attention.wq": "attn_q",
    "attention.wk": "attn_k",
    "attention.wv": "attn_v",
    "attention.wo": "attn_output",
    "feed_forward.w1": "ffn_gate",
    "feed_forward.w2": "ffn_down",
    "feed_forward.w3": "ffn_up",
}


def gguf_dtype(dtype: str) -> str:
    if dtype not in DTYPE_ALIASES:
        raise ZhllamaError(f"unknown dtype {dtype!r} for gguf; dtypes: {', '.join(GGUF_DTYPES)}")
    return DTYPE_ALIASES[dtype]


def tensor_names(shape: ModelShape) -> dict[str, str]:
    """State-dict name → GGUF tensor name, in the order the file holds them."""
    names = {"tok_embeddings.weight": "token_embd.weight"}
    for i in range(shape.n_layers):
        for ours in (*LAYER_NORMS[:1], *LAYER_MATRICES[:4], *LAYER_NORMS[1:], *LAYER_MATRICES[4:]):
            names[f"layers.{i}.{ours}.weight"] = f"blk.{i}.{_LAYER_NAMES[ours]}.weight"
    names["norm.weight"] = "output_norm.weight"
    if not shape.shared_classifier:
        names["output.weight"] = "output.weight"  # else llama.cpp reuses token_embd
    return names


# ---------------------------------------------------------------------------------- writing


def _q8_from_int8(q: torch.Tensor, scale: torch.Tensor, group_size: int) -> np.ndarray:
    """llama.cpp Q8_0 blocks holding `q` unchanged: block b of a row takes the scale of the
    group it lies in (groups are `group_size` long, a multiple of 32)."""
    rows, cols = q.shape
    per_group = group_size // Q8_BLOCK
    d = scale.numpy().astype(np.float32).repeat(per_group).astype(np.float16)
    blocks = np.concatenate(
        [d.view(np.uint8).reshape(-1, 2), q.numpy().reshape(-1, Q8_BLOCK).view(np.uint8)], axis=1
    )
    return blocks.reshape(rows, cols // Q8_BLOCK * (2 + Q8_BLOCK))


def _encode(
    name: str, t: torch.Tensor, dtype: str, w: Weights, fallbacks: list[str]
) -> tuple[np.ndarray, Any]:
    """(array, raw GGML type or None) for one tensor at the requested dtype."""
    a = t.detach().to(torch.float32).contiguous().numpy()
    if a.ndim == 1 or dtype == "f32":
        return a, None
    if dtype == "f16":
        return a.astype(np.float16), None
    if dtype == "bf16":
        return gguf.quants.quantize(a, T.BF16), T.BF16
    if a.shape[1] % Q8_BLOCK:
        fallbacks.append(name)
        return a.astype(np.float16), None
    if w.int8 is not None:
        q, scale = w.int8.tensors[name]
        return _q8_from_int8(q, scale, w.int8.group_size), T.Q8_0
    return gguf.quants.quantize(a, T.Q8_0), T.Q8_0


def check_int8_source(w: Weights, dtype: str, where: str) -> None:
    """Refuse int8 weights that cannot become GGUF q8_0 without quantizing twice."""
    if w.int8 is None or dtype != "q8_0" or w.int8.group_size % Q8_BLOCK == 0:
        return
    raise ZhllamaError(
        f"{where}: the source's int8 groups of {w.int8.group_size} do not map onto GGUF "
        f"q8_0's blocks of {Q8_BLOCK} (that would quantize twice); export q8_0 from the fp32 "
        "model, or choose --dtype f32/f16 for this file"
    )


def write_gguf(w: Weights, out: Path, dtype: str, vocab: Vocab | None, name: str) -> list[str]:
    """Write `w` (and `vocab`, if any) as GGUF at `out`, atomically. Returns the matrices
    stored f16 because q8_0 could not hold them (rows not a multiple of 32)."""
    dtype = gguf_dtype(dtype)
    check_int8_source(w, dtype, str(out))
    s = w.shape
    writer = gguf.GGUFWriter(None, ARCH)
    writer.add_name(name)
    writer.add_file_type(_FILE_TYPES[dtype])
    if dtype == "q8_0":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_context_length(s.max_seq_len)
    writer.add_embedding_length(s.dim)
    writer.add_block_count(s.n_layers)
    writer.add_feed_forward_length(s.hidden_dim)
    writer.add_head_count(s.n_heads)
    writer.add_head_count_kv(s.n_kv_heads)
    writer.add_rope_dimension_count(s.head_dim)
    writer.add_rope_freq_base(ROPE_BASE)
    writer.add_layer_norm_rms_eps(s.norm_eps)
    writer.add_vocab_size(s.vocab_size)
    if vocab is not None:
        if vocab.size != s.vocab_size:
            raise ZhllamaError(
                f"{vocab.source}: tokenizer has {vocab.size} tokens but the model's vocab is "
                f"{s.vocab_size}"
            )
        _add_vocab(writer, vocab)
    fallbacks: list[str] = []
    for ours, theirs in tensor_names(s).items():
        array, raw = _encode(ours, w.tensors[ours], dtype, w, fallbacks)
        writer.add_tensor(theirs, array, raw_dtype=raw)
    with atomic_path(out) as tmp:
        try:
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
    return fallbacks


def _add_vocab(writer: gguf.GGUFWriter, v: Vocab) -> None:
    writer.add_tokenizer_model("llama")  # llama.cpp's name for sentencepiece
    writer.add_tokenizer_pre("default")
    writer.add_token_list(v.tokens)
    writer.add_token_scores(v.scores)
    writer.add_token_types(v.types)
    writer.add_bos_token_id(v.bos_id)
    writer.add_eos_token_id(v.eos_id)
    writer.add_unk_token_id(v.unk_id)
    writer.add_add_bos_token(v.add_bos)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(v.add_space_prefix)
    writer.add_remove_extra_whitespaces(v.remove_extra_whitespaces)


# ---------------------------------------------------------------------------------- reading


@dataclass
class GgufModel:
    weights: Weights
    dtype: str  # "f32", "q8_0", ... or "mixed (q8_0, f16)"
    vocab: Vocab | None
    name: str


def _fields(reader: gguf.GGUFReader) -> dict[str, Any]:
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def _int(fields: dict[str, Any], key: str, where: str) -> int:
    if key not in fields:
        raise ZhllamaError(f"{where}: GGUF metadata {key} is missing")
    return int(fields[key])


def _dequantize(t: Any) -> np.ndarray:
    if t.tensor_type == T.F32:
        return np.array(t.data, dtype=np.float32)
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)


def read_gguf(path: Path) -> GgufModel:
    """A llama-architecture GGUF as fp32 `Weights`, its dtype and its tokenizer (if any)."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise ZhllamaError(f"{path}: no such GGUF file")
    try:
        reader = gguf.GGUFReader(path)
        fields = _fields(reader)
    except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError, OSError) as e:
        raise ZhllamaError(f"{path}: not a readable GGUF file ({e})") from None
    arch = fields.get("general.architecture")
    if arch != ARCH:
        raise ZhllamaError(f"{path}: GGUF architecture {arch!r}; zhllama reads {ARCH!r} only")
    p = f"{ARCH}."
    tensors = {t.name: t for t in reader.tensors}
    vocab_size = fields.get(p + "vocab_size")
    if vocab_size is None and "token_embd.weight" in tensors:
        vocab_size = int(tensors["token_embd.weight"].shape[1])
    heads = _int(fields, p + "attention.head_count", where)
    shape = ModelShape(
        dim=_int(fields, p + "embedding_length", where),
        hidden_dim=_int(fields, p + "feed_forward_length", where),
        n_layers=_int(fields, p + "block_count", where),
        n_heads=heads,
        n_kv_heads=int(fields.get(p + "attention.head_count_kv", heads)),
        vocab_size=int(vocab_size or 0),
        max_seq_len=_int(fields, p + "context_length", where),
        shared_classifier="output.weight" not in tensors,
        norm_eps=float(fields.get(p + "attention.layer_norm_rms_epsilon", 1e-5)),
    )
    shape.check(where)
    base = float(fields.get(p + "rope.freq_base", ROPE_BASE))
    rope_dims = int(fields.get(p + "rope.dimension_count", shape.head_dim))
    if base != ROPE_BASE or rope_dims != shape.head_dim:
        raise ZhllamaError(
            f"{path}: RoPE base {base:g} over {rope_dims} of {shape.head_dim} head dims; "
            f"zhllama's engines rotate every head dim with base {ROPE_BASE:g}"
        )
    names = tensor_names(shape)
    unexpected = sorted(set(tensors) - set(names.values()))
    if unexpected:
        raise ZhllamaError(f"{path}: tensors zhllama's model has no place for: {unexpected[:5]}")
    expected = shape.tensor_shapes()
    out: dict[str, torch.Tensor] = {}
    kinds: list[str] = []
    for ours, theirs in names.items():
        t = tensors.get(theirs)
        if t is None:
            raise ZhllamaError(f"{path}: tensor {theirs} is missing")
        dims = tuple(int(x) for x in reversed(t.shape.tolist()))  # GGUF lists innermost first
        if dims != expected[ours]:
            raise ZhllamaError(f"{path}: tensor {theirs} is {dims}, expected {expected[ours]}")
        try:
            values = _dequantize(t).reshape(dims)
        except NotImplementedError:
            raise ZhllamaError(
                f"{path}: tensor {theirs} is {t.tensor_type.name}, which cannot be read back"
            ) from None
        out[ours] = torch.from_numpy(values)
        if len(dims) == 2 and t.tensor_type.name.lower() not in kinds:
            kinds.append(t.tensor_type.name.lower())
    dtype = kinds[0] if len(kinds) == 1 else f"mixed ({', '.join(kinds)})"
    vocab = from_gguf_fields(fields, where)
    if vocab is not None and vocab.size != shape.vocab_size:
        raise ZhllamaError(
            f"{path}: {vocab.size} tokens in the tokenizer, vocab size {shape.vocab_size}"
        )
    return GgufModel(Weights(shape, out), dtype, vocab, str(fields.get("general.name", "")))


# ------------------------------------------------------------------------- finding a tokenizer


def find_vocab(loaded: Loaded, vocab_size: int) -> tuple[Vocab | None, str]:
    """The tokenizer for a GGUF export when none was named: the source GGUF's own, else the
    checkpoint's `.model` (weights.tokenizer_candidates). Returns the vocab (None when none was
    found) and what was tried or used, for messages."""
    if loaded.vocab is not None:
        return loaded.vocab, f"the tokenizer inside {loaded.path}"
    tried = tokenizer_candidates(loaded)
    for cand in tried:
        if cand.is_file():
            return load_vocab(cand, vocab_size), str(cand)
    return None, ", ".join(map(str, tried))
