"""The corpus sources this package registers (entry-point group `zhllama.sources`).

A light module: it imports only the source modules, which keep huggingface_hub and pyarrow
imports inside the functions that use them, so `zhllama plugins` stays fast.
"""

from __future__ import annotations

from zhllama.registry import Component

from zhllama_data.sources.jsonl import JsonlConfig, JsonlSource
from zhllama_data.sources.synthetic import SyntheticConfig, SyntheticSource
from zhllama_data.sources.tinystories_zh import TinyStoriesZhConfig, TinyStoriesZhSource

synthetic = Component(
    name="synthetic",
    description="offline generated Chinese children's stories (settings: num_stories, seed)",
    factory=SyntheticSource,
    config=SyntheticConfig,
)
jsonl = Component(
    name="jsonl",
    description="your own .jsonl/.json/.txt/.md files (settings: path, text_key, strict, "
    "txt_split)",
    factory=JsonlSource,
    config=JsonlConfig,
)
tinystories_zh = Component(
    name="tinystories-zh",
    description="TinyStoriesChinese from the HuggingFace hub (settings: revision, cache_dir, "
    "local_dir, offline, strict)",
    factory=TinyStoriesZhSource,
    config=TinyStoriesZhConfig,
)
