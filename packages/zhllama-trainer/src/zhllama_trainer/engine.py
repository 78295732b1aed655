"""The `torch` inference engine: a checkpoint, a KV cache and llama2.c's sampler.

Generation follows FORMATS.md §3 step for step (prompt with BOS, forced prompt tokens, `steps`
counting positions, stop on BOS or EOS), so at a seed it gives what the Rust engine gives
whenever the two compute the same logits up to rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from zhllama.contracts import EngineConfig, SampleSettings
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry

from zhllama_trainer.checkpoint import load_checkpoint, load_model
from zhllama_trainer.model import Transformer
from zhllama_trainer.sampling import Sampler


def _find_tokenizer(config: EngineConfig, ckpt_tokenizer: str | None) -> Path:
    """A sentencepiece .model: the one asked for (a .bin is matched by a .model beside it),
    else the checkpoint's, else tokenizer.model beside the checkpoint."""
    cands: list[Path] = []
    if config.tokenizer is not None:
        t = Path(config.tokenizer)
        cands = [t] if t.suffix != ".bin" else [t.with_suffix(".model")]
        if not cands[0].is_file():
            raise ZhllamaError(
                f"{t}: the torch engine needs the sentencepiece .model"
                + (f" (looked for {cands[0]})" if t.suffix == ".bin" else "")
            )
        return cands[0]
    if ckpt_tokenizer:
        cands.append(Path(ckpt_tokenizer))
    cands.append(Path(config.checkpoint).parent / "tokenizer.model")
    for c in cands:
        if c.is_file():
            return c
    raise ZhllamaError(
        f"{config.checkpoint}: no tokenizer found (tried {', '.join(map(str, cands))}); pass -z"
    )


class TorchEngine:
    def __init__(self, config: EngineConfig) -> None:
        path = Path(config.checkpoint)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = torch.device(config.device)
        ckpt_tok = None
        if path.suffix == ".bin":  # a llama2.c file, through the exporter's reader
            model = get_registry().create("exporters", "llama2c").read(path)
        else:
            model, _ = load_model(path, "cpu")
            ckpt_tok = load_checkpoint(path).get("tokenizer")
        self.model: Transformer = model.to(self.device).eval()
        self.tokenizer: Any = get_registry().create(
            "tokenizers", "sentencepiece", model=_find_tokenizer(config, ckpt_tok)
        )
        if self.tokenizer.vocab_size != self.model.args.vocab_size:
            raise ZhllamaError(
                f"tokenizer has {self.tokenizer.vocab_size} tokens but {path} expects "
                f"{self.model.args.vocab_size}"
            )

    @torch.inference_mode()
    def stream(self, settings: SampleSettings) -> Iterator[str]:
        tok, model = self.tokenizer, self.model
        T = model.args.max_seq_len
        steps = T if settings.steps <= 0 or settings.steps > T else settings.steps
        prompt = [tok.bos_id] + tok.encode(settings.prompt)
        if len(prompt) > steps:
            raise ZhllamaError(f"the prompt is {len(prompt)} tokens, more than steps={steps}")
        sampler = Sampler(settings.temperature, settings.top_p, settings.seed)
        cache = model.new_cache(1)
        ids: list[int] = []  # everything after BOS, for decoding
        emitted = ""
        token, pos = prompt[0], 0
        while pos < steps:
            x = torch.tensor([[token]], device=self.device)
            logits = model.forward_cached(x, cache, pos)[0]
            forced = pos < len(prompt) - 1  # the prompt's own tokens come first
            nxt = prompt[pos + 1] if forced else sampler(logits.cpu().numpy())
            pos += 1
            if nxt == tok.bos_id or (settings.stop_at_eos and nxt == tok.eos_id):
                break
            ids.append(nxt)
            token = nxt
            text = tok.decode(ids)
            # Hold back trailing U+FFFD: the rest of that character's bytes may still come.
            whole = text.rstrip("\ufffd")
            if len(whole) > len(emitted) and whole.startswith(emitted):
                yield whole[len(emitted) :]
                emitted = whole
        text = tok.decode(ids)
        if len(text) > len(emitted) and text.startswith(emitted):
            yield text[len(emitted) :]
