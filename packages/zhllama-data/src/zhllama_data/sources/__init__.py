"""Corpus sources: each has a `name` and `stories()`, an iterator of story texts (the contract,
`Source` and `RandomAccessSource`, is in zhllama.contracts).

Sources are found through the registry (`get_registry().create("sources", NAME, **settings)`);
`open_source` does that from the `key=value` strings a command line gives.
"""

from __future__ import annotations

from zhllama.contracts import RandomAccessSource, Source

__all__ = ["RandomAccessSource", "Source", "open_source"]


def open_source(name: str, settings: list[str] | dict[str, str] | None = None) -> Source:
    """The source `name` configured from `["key=value", …]` (or a dict), via the registry."""
    from zhllama.config import parse_overrides
    from zhllama.registry import get_registry

    values = parse_overrides(settings) if isinstance(settings, list) else dict(settings or {})
    return get_registry().create("sources", name, **values)
