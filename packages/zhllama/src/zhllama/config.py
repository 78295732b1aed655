"""Typed component configs built from loose key/value pairs.

Components take a dataclass config. Users give values as strings (`--key value` on the command
line, `key=value` in `just train`), so `build_config` checks the keys against the dataclass fields
(an unknown key is an error that lists the known ones) and converts each value to its field type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from zhllama.errors import ZhllamaError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        is_none = value is None or (isinstance(value, str) and value.lower() in {"none", "null"})
        if is_none and len(args) < len(typing.get_args(hint)):
            return None
        return _convert(name, value, args[0]) if len(args) == 1 else value
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ZhllamaError(
                f"{name} must be one of {', '.join(map(str, allowed))}, not {value!r}"
            )
        return value
    if not isinstance(value, str):
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if hint is bool:
            low = value.lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ValueError
        if hint is int:
            return int(value.replace("_", ""))
        if hint is float:
            return float(value)
        if hint is Path:
            return Path(value)
    except ValueError:
        kind = getattr(hint, "__name__", str(hint))
        raise ZhllamaError(f"{name} must be {kind}, not {value!r}") from None
    return value


def config_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls)}


def build_config(cls: type[T], values: dict[str, Any] | None = None, base: T | None = None) -> T:
    """Make a `cls` dataclass from `values` (strings are converted), on top of `base` if given."""
    values = dict(values or {})
    fields = config_fields(cls)
    unknown = sorted(k for k in values if k not in fields)
    if unknown:
        raise ZhllamaError(
            # no class name: users know the command they typed, not our dataclasses
            f"unknown setting {', '.join(unknown)}; known settings: {', '.join(fields)}"
        )
    if base is None:
        missing = [
            name
            for name, f in fields.items()
            if f.init
            and name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ZhllamaError(f"missing setting {', '.join(missing)} (give it as KEY=VALUE)")
    hints = typing.get_type_hints(cls)
    converted = {k: _convert(k, v, hints[k]) for k, v in values.items()}
    try:
        if base is not None:
            return dataclasses.replace(base, **converted)  # type: ignore[type-var]
        return cls(**converted)
    except TypeError as e:
        raise ZhllamaError(f"bad settings: {e}") from None


def parse_overrides(items: list[str]) -> dict[str, str]:
    """Turn `["key=value", "--key", "value", "--flag"]` into a dict (dashes become underscores)."""
    out: dict[str, str] = {}
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith("--"):
            key = item[2:]
            if "=" in key:
                key, value = key.split("=", 1)
            elif i + 1 < len(items) and not items[i + 1].startswith("--"):
                value = items[i + 1]
                i += 1
            else:
                value = "true"
        elif "=" in item:
            key, value = item.split("=", 1)
        else:
            raise ZhllamaError(f"cannot read setting {item!r}: write key=value or --key value")
        out[key.replace("-", "_")] = value
        i += 1
    return out
