"""The component registry: every stage finds its peers here, by kind and name.

Components come from Python entry points, one group per kind (`zhllama.sources`,
`zhllama.tokenizers`, `zhllama.presets`, `zhllama.exporters`, `zhllama.engines`). Each entry
point names a `Component` object. The workspace packages register theirs exactly as an outside
package would, so a new data source or export format is a new package with one entry-point line.

Loading the registry imports only the modules that define the `Component` objects; those modules
keep heavy imports (torch, transformers) inside the factories, so listing plugins is fast. A
plugin that fails to load is recorded as a `PluginFailure` and does not hide the others.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from zhllama.config import build_config
from zhllama.errors import ZhllamaError

KINDS: dict[str, str] = {
    "sources": "corpus sources: where stories come from",
    "tokenizers": "tokenizer trainers and loaders",
    "presets": "model and training size presets",
    "exporters": "checkpoint export formats",
    "engines": "inference engines for sampling",
}
GROUP_PREFIX = "zhllama."


@dataclass(frozen=True)
class Component:
    """A named, described factory. `config` is the dataclass type the factory takes, if any."""

    name: str
    description: str
    factory: Callable[..., Any]
    config: type | None = None

    def make_config(self, values: dict[str, Any] | None = None) -> Any:
        if self.config is None:
            if values:
                raise ZhllamaError(f"{self.name} takes no settings, got {', '.join(values)}")
            return None
        return build_config(self.config, values)

    def create(self, config: Any = None, **values: Any) -> Any:
        """Call the factory with `config`, or with a config built from `values`."""
        if config is not None and values:
            config = dataclasses.replace(config, **values)
        elif config is None:
            config = self.make_config(values)
        return self.factory(config) if self.config is not None else self.factory()


@dataclass(frozen=True)
class PluginFailure:
    kind: str
    name: str
    target: str
    error: str


class Registry:
    """Components by kind and name, loaded from entry points on first use."""

    def __init__(self) -> None:
        self._components: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self._failures: list[PluginFailure] = []
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for kind in KINDS:
            for ep in entry_points(group=GROUP_PREFIX + kind):
                self._load_entry_point(kind, ep)

    def _load_entry_point(self, kind: str, ep: EntryPoint) -> None:
        try:
            obj = ep.load()
        except Exception as e:  # a broken plugin must not break the others
            self._failures.append(
                PluginFailure(kind, ep.name, ep.value, f"{type(e).__name__}: {e}")
            )
            return
        if not isinstance(obj, Component):
            err = f"{ep.value} is a {type(obj).__name__}, not a zhllama Component"
            self._failures.append(PluginFailure(kind, ep.name, ep.value, err))
            return
        self._components[kind].setdefault(obj.name, obj)

    def register(self, kind: str, component: Component) -> None:
        """Add a component by hand (scripts and tests); entry points are the usual way."""
        self._check_kind(kind)
        self._load()
        self._components[kind][component.name] = component

    def _check_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise ZhllamaError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")

    def components(self, kind: str) -> dict[str, Component]:
        self._check_kind(kind)
        self._load()
        return dict(sorted(self._components[kind].items()))

    def failures(self) -> list[PluginFailure]:
        self._load()
        return list(self._failures)

    def get(self, kind: str, name: str) -> Component:
        found = self.components(kind)
        if name in found:
            return found[name]
        known = ", ".join(found) or "none installed"
        msg = f"unknown {kind[:-1]} {name!r}; known {kind}: {known}"
        broken = [f for f in self._failures if f.kind == kind and f.name == name]
        if broken:
            msg = f"{kind[:-1]} {name!r} failed to load: {broken[0].error}"
        raise ZhllamaError(msg)

    def create(self, kind: str, name: str, config: Any = None, **values: Any) -> Any:
        return self.get(kind, name).create(config, **values)


_registry: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry; `refresh=True` rereads entry points (after an install)."""
    global _registry
    if _registry is None or refresh:
        _registry = Registry()
    return _registry


def get(kind: str, name: str) -> Component:
    return get_registry().get(kind, name)


def create(kind: str, name: str, config: Any = None, **values: Any) -> Any:
    return get_registry().create(kind, name, config, **values)
