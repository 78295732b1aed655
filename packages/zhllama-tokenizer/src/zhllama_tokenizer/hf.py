"""HuggingFace tokenizer files for a sentencepiece BPE model.

Writes `tokenizer.model` (the sentencepiece file itself), a fast `tokenizer.json` (BPE with
byte fallback), `tokenizer_config.json` and `special_tokens_map.json`. The settings make
transformers encode like sentencepiece: BOS added and EOS not, no chat template. The fast
tokenizer's normalizer reproduces sentencepiece's whitespace handling (runs of ASCII spaces
collapse to one, leading and trailing spaces go) before the `▁` prefix.

`tokenizer_class` is `PreTrainedTokenizerFast`, so `AutoTokenizer` uses `tokenizer.json` as
written. With `LlamaTokenizer` there, transformers >= 5 rebuilds the normalizer from its own Llama
defaults and stops collapsing spaces: `'从前  有   猫'` then gains two extra `▁` tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from zhllama.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from zhllama.errors import ZhllamaError

from zhllama_tokenizer.spm import load_processor

if TYPE_CHECKING:
    import sentencepiece as spm

SPACE = "\u2581"


def _merges(pieces: dict[str, int], score_of: dict[str, float]) -> list[tuple[str, str]]:
    """BPE merges that replay sentencepiece: every split of a piece into two pieces, ranked by
    the merged piece's score (sentencepiece merges the best-scoring pair first)."""
    found = []
    for piece, pid in pieces.items():
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in pieces and right in pieces:
                found.append((-score_of[piece], pid, pieces[left], pieces[right], left, right))
    found.sort()
    return [(left, right) for *_, left, right in found]


def build_fast_tokenizer(sp: spm.SentencePieceProcessor) -> Any:
    """A `tokenizers.Tokenizer` equivalent to the loaded sentencepiece model."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE

    vocab = {sp.id_to_piece(i): i for i in range(sp.vocab_size())}
    normal = {
        sp.id_to_piece(i): i
        for i in range(sp.vocab_size())
        if not (sp.is_byte(i) or sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i))
    }
    scores = {p: sp.get_score(i) for p, i in normal.items()}
    unk = sp.id_to_piece(sp.unk_id())
    tok = Tokenizer(
        BPE(
            vocab=vocab,
            merges=_merges(normal, scores),
            unk_token=unk,
            fuse_unk=True,
            byte_fallback=True,
        )
    )
    # \A and \z, not ^ and $: Oniguruma's ^/$ match at every newline
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(" {2,}"), " "),
            normalizers.Replace(Regex(r"\A +| +\z"), ""),
            normalizers.Prepend(SPACE),
            normalizers.Replace(" ", SPACE),
        ]
    )
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace(SPACE, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(content=" ", left=1, right=0),
        ]
    )
    bos = sp.id_to_piece(sp.bos_id())
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0",
        pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
        special_tokens=[(bos, sp.bos_id())],
    )
    specials = [unk, bos, sp.id_to_piece(sp.eos_id())]
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in specials])
    return tok


def export_hf(
    model: Path,
    out_dir: Path,
    model_max_length: int | None = None,
    vocab_size: int | None = None,
) -> Path:
    """Write the HuggingFace tokenizer files for `model` into `out_dir` (atomically).
    `vocab_size`, when given, is the model's the files go with: another size is an error."""
    model = Path(model)
    sp, data = load_processor(model)
    if vocab_size is not None and sp.vocab_size() != vocab_size:
        raise ZhllamaError(
            f"{model}: tokenizer has {sp.vocab_size()} tokens but the model's vocab is {vocab_size}"
        )
    unk, bos, eos = (sp.id_to_piece(i) for i in (sp.unk_id(), sp.bos_id(), sp.eos_id()))
    fast = build_fast_tokenizer(sp)
    added = {
        str(i): {
            "content": sp.id_to_piece(i),
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i in (sp.unk_id(), sp.bos_id(), sp.eos_id())
    }
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": unk,
        "pad_token": None,
        "legacy": True,
        "clean_up_tokenization_spaces": False,
        "spaces_between_special_tokens": False,
        "use_default_system_prompt": False,
        "sp_model_kwargs": {},
        "added_tokens_decoder": added,
    }
    if model_max_length is not None:
        config["model_max_length"] = model_max_length
    special_map = {"bos_token": bos, "eos_token": eos, "unk_token": unk}
    # file by file, not atomic_dir: `out_dir` may already hold a model's weights
    out_dir = Path(out_dir)
    atomic_write_bytes(out_dir / "tokenizer.model", data)
    atomic_write_text(out_dir / "tokenizer.json", fast.to_str(pretty=True))
    atomic_write_json(out_dir / "tokenizer_config.json", config)
    atomic_write_json(out_dir / "special_tokens_map.json", special_map)
    return out_dir
