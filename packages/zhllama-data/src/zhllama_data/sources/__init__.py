"""Corpus sources: each has a `name` and `stories()`, an iterator of story texts (the contract,
`Source` and `RandomAccessSource`, is in zhllama.contracts).

Sources are found through the registry (`get_registry().create("sources", NAME, **settings)`;
the commands do it with zhllama.cli_options.open_source).
"""

from __future__ import annotations

from zhllama.contracts import RandomAccessSource, Source

__all__ = ["RandomAccessSource", "Source"]
