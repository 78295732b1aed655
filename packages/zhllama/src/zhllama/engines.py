"""Kept for one release: the engine contract moved to zhllama.contracts (import it from there).

zhllama_rs's Python components still import these names from here.
"""

from __future__ import annotations

from zhllama.contracts import Engine, EngineConfig, SampleSettings

__all__ = ["Engine", "EngineConfig", "SampleSettings"]
