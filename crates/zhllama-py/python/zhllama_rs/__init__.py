"""zhllama_rs: run llama2.c-format story models from Python with the zhllama Rust engine.

    >>> import zhllama_rs
    >>> model = zhllama_rs.Model("stories15M.bin", tokenizer="tok5000.bin")
    >>> print(model.generate("从前", steps=64, temperature=0.0))

`Model` loads a checkpoint (memory-mapped, validated) and generates text (`generate`, `stream`),
many stories at once (`generate_batch`, `stream_batch`: one weight pass per step for all, each
story byte-identical to `generate` with seed + i), chats in the Llama-2 template as
`zhllama-rs -m chat` does (`chat`, then `Chat.say`), or runs single positions (`forward`,
`reset`) for custom sampling; `Tokenizer` encodes and decodes exactly as sentencepiece does.
The GIL is released while the engine computes. Errors:
`FileNotFoundError` for a missing file, `ValueError` for a malformed file or a bad argument,
`OSError` for anything the operating system refuses.

The native half is the private module `zhllama_rs._native`; this facade is the public API.
"""

from zhllama_rs._native import BOS, EOS, BatchStream, Chat, Model, Stream, Tokenizer, __version__

__all__ = ["BOS", "EOS", "BatchStream", "Chat", "Model", "Stream", "Tokenizer", "__version__"]
