"""`zhllama sample --engine rust`: the zhllama.engines contract on top of `zhllama_rs.Model`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from zhllama.engines import EngineConfig, SampleSettings
from zhllama.errors import ZhllamaError

from zhllama_rs import Model

# The same default as the zhllama-rs command's -z.
DEFAULT_TOKENIZER = Path("tokenizer.bin")


class RustEngine:
    """A loaded model; `stream(settings)` yields the story's text pieces, prompt first."""

    def __init__(self, config: EngineConfig) -> None:
        if config.device not in ("cpu", "auto"):
            raise ZhllamaError(f"the rust engine runs on the CPU only, not {config.device!r}")
        tokenizer = config.tokenizer
        if tokenizer is None:
            # as zhllama-rs: ./tokenizer.bin, else the one beside the checkpoint (a run folder)
            beside = Path(config.checkpoint).parent / DEFAULT_TOKENIZER
            use_beside = not DEFAULT_TOKENIZER.is_file() and beside.is_file()
            tokenizer = beside if use_beside else DEFAULT_TOKENIZER
        try:
            self.model = Model(config.checkpoint, tokenizer, config.threads)
        except FileNotFoundError as e:
            hint = " (pass the tokenizer with -z)" if Path(str(e.filename)) == tokenizer else ""
            raise ZhllamaError(f"{e.filename}: no such file{hint}") from None
        except (ValueError, OSError) as e:
            raise ZhllamaError(str(e)) from None

    def stream(self, settings: SampleSettings) -> Iterator[str]:
        try:
            pieces = self.model.stream(
                settings.prompt,
                steps=settings.steps,
                temperature=settings.temperature,
                top_p=settings.top_p,
                seed=settings.seed,
                stop_at_eos=settings.stop_at_eos,
            )
        except ValueError as e:
            raise ZhllamaError(str(e)) from None
        yield from pieces
