"""What a tokenizer does to text: characters per token, byte-fallback share, merges.

The seed's tok5000 was character-level in effect (4,741 single-character pieces, no merges), so
a model saw one token per character. This report makes that visible for every trained model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sentencepiece as spm
from rich.console import Console
from rich.table import Table


def vocab_composition(sp: spm.SentencePieceProcessor) -> dict[str, int]:
    """Count pieces by kind: special, byte fallback, single characters, merges (≥ 2 chars)."""
    counts = {"special": 0, "byte": 0, "single_char": 0, "merge": 0}
    for i in range(sp.vocab_size()):
        if sp.is_byte(i):
            counts["byte"] += 1
        elif sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            counts["special"] += 1
        elif len(sp.id_to_piece(i)) == 1:  # "▁" alone counts as one character
            counts["single_char"] += 1
        else:
            counts["merge"] += 1
    return counts


def tokenizer_report(sp: spm.SentencePieceProcessor, texts: Iterable[str]) -> dict[str, Any]:
    """Encode held-out `texts` (no BOS/EOS) and summarise; every ratio is over all texts."""
    texts = list(texts)
    encoded = sp.encode(texts) if texts else []
    is_byte = [sp.is_byte(i) for i in range(sp.vocab_size())]
    is_merge = [
        not is_byte[i] and not (sp.is_control(i) or sp.is_unknown(i)) and len(sp.id_to_piece(i)) > 1
        for i in range(sp.vocab_size())
    ]
    n_tokens = sum(len(ids) for ids in encoded)
    n_chars = sum(len(t) for t in texts)
    n_bytes = sum(len(t.encode()) for t in texts)
    byte_tokens = sum(is_byte[i] for ids in encoded for i in ids)
    merge_tokens = sum(is_merge[i] for ids in encoded for i in ids)
    used = len({i for ids in encoded for i in ids})
    vocab = vocab_composition(sp)
    return {
        "vocab_size": sp.vocab_size(),
        "vocab": vocab,
        "heldout": {
            "texts": len(texts),
            "chars": n_chars,
            "utf8_bytes": n_bytes,
            "tokens": n_tokens,
            "chars_per_token": n_chars / n_tokens if n_tokens else 0.0,
            "bytes_per_token": n_bytes / n_tokens if n_tokens else 0.0,
            "byte_fallback_share": byte_tokens / n_tokens if n_tokens else 0.0,
            "merge_token_share": merge_tokens / n_tokens if n_tokens else 0.0,
            "distinct_ids_used": used,
        },
        "character_level": vocab["merge"] == 0,
    }


def print_report(report: dict[str, Any], console: Console | None = None, title: str = "") -> None:
    console = console or Console()
    h, v = report["heldout"], report["vocab"]
    table = Table(title=title or f"tokenizer report (vocab {report['vocab_size']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("held-out texts", f"{h['texts']:,}")
    table.add_row("characters per token", f"{h['chars_per_token']:.3f}")
    table.add_row("UTF-8 bytes per token", f"{h['bytes_per_token']:.3f}")
    table.add_row("byte-fallback tokens", f"{h['byte_fallback_share']:.2%}")
    table.add_row("tokens that are merges", f"{h['merge_token_share']:.2%}")
    table.add_row("pieces: single characters", f"{v['single_char']:,}")
    table.add_row("pieces: merges (≥ 2 chars)", f"{v['merge']:,}")
    table.add_row("pieces: byte fallback", f"{v['byte']:,}")
    table.add_row("pieces: special", f"{v['special']:,}")
    console.print(table)
    if report["character_level"]:
        console.print(
            "[yellow]no merges: this tokenizer is character-level in effect; lower "
            "character_coverage or raise the vocab size to get merges[/]"
        )
