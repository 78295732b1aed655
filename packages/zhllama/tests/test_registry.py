"""The registry (lookup, errors, outside and broken plugins) and typed config building."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from zhllama.config import build_config, parse_overrides
from zhllama.errors import ZhllamaError
from zhllama.registry import KINDS, Component, get_registry


def test_every_kind_is_listed():
    registry = get_registry(refresh=True)
    for kind in KINDS:
        assert isinstance(registry.components(kind), dict)
    with pytest.raises(ZhllamaError, match="unknown component kind 'sauces'; kinds: sources"):
        registry.components("sauces")


def test_outside_plugin_is_listed_and_usable(plugin_site):
    registry = get_registry(refresh=True)
    comp = registry.get("sources", "outside")
    assert comp.description == "a source from an outside package"
    assert "outside" in registry.components("sources")
    assert list(registry.create("sources", "outside").stories()) == ["你好0", "你好1"]
    source = registry.create("sources", "outside", count="3", word="嗨")  # strings converted
    assert list(source.stories()) == ["嗨0", "嗨1", "嗨2"]
    config = comp.config(count=1)
    assert list(registry.create("sources", "outside", config).stories()) == ["你好0"]
    assert list(registry.create("sources", "outside", config, count=2).stories()) == [
        "你好0",
        "你好1",
    ]
    assert registry.create("presets", "plain") == "plain object"


def test_unknown_name_lists_the_known_ones(plugin_site):
    registry = get_registry(refresh=True)
    with pytest.raises(ZhllamaError) as err:
        registry.get("sources", "nope")
    message = str(err.value)
    assert message.startswith("unknown source 'nope'; known sources: ")
    assert "outside" in message
    for name in registry.components("sources"):
        assert name in message


def test_broken_plugin_is_reported_and_does_not_break_the_others(plugin_site):
    registry = get_registry(refresh=True)
    failures = {f.name: f for f in registry.failures()}
    broken = failures["broken"]
    assert broken.kind == "exporters"
    assert broken.target == "broken_zh_plugin:exporter"
    assert broken.error == "RuntimeError: boom: this plugin is broken"
    assert "is a int, not a zhllama Component" in failures["notacomp"].error
    with pytest.raises(ZhllamaError, match="exporter 'broken' failed to load: RuntimeError: boom"):
        registry.get("exporters", "broken")
    assert "broken" not in registry.components("exporters")
    assert list(registry.create("sources", "outside").stories())  # the others still work


def test_plugins_disappear_after_refresh_without_them(plugin_site, tmp_path):
    assert "outside" in get_registry(refresh=True).components("sources")
    import sys

    sys.path.remove(str(plugin_site))
    try:
        assert "outside" not in get_registry(refresh=True).components("sources")
    finally:
        sys.path.insert(0, str(plugin_site))


def test_register_by_hand_and_settings_for_a_component_without_config():
    registry = get_registry(refresh=True)
    comp = Component("by-hand", "registered in code", lambda: 7)
    registry.register("engines", comp)
    assert registry.create("engines", "by-hand") == 7
    with pytest.raises(ZhllamaError, match="by-hand takes no settings, got speed"):
        registry.create("engines", "by-hand", speed="1")
    get_registry(refresh=True)


# --- config building -------------------------------------------------------------------------


@dataclass
class Cfg:
    n: int = 1
    lr: float = 0.1
    flag: bool = False
    path: Path | None = None
    mode: Literal["fast", "slow"] = "fast"
    name: str = "x"
    limit: int | None = None


@dataclass
class Needs:
    where: Path
    n: int = 1


def test_values_are_converted_from_strings():
    cfg = build_config(
        Cfg,
        {
            "n": "1_000",
            "lr": "3e-4",
            "flag": "yes",
            "path": "runs/a",
            "mode": "slow",
            "name": "名字",
            "limit": "none",
        },
    )
    assert cfg == Cfg(1000, 3e-4, True, Path("runs/a"), "slow", "名字", None)
    assert build_config(Cfg, {"flag": "OFF", "limit": "5"}) == Cfg(flag=False, limit=5)
    assert build_config(Cfg, {"n": 3, "lr": 1}) == Cfg(n=3, lr=1.0)  # typed values pass
    assert isinstance(build_config(Cfg, {"lr": 1}).lr, float)
    assert build_config(Cfg, {"n": "5"}, base=Cfg(lr=0.5)) == Cfg(n=5, lr=0.5)
    assert build_config(Cfg) == Cfg()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"n": "many"}, "n must be int, not 'many'"),
        ({"lr": "fast"}, "lr must be float, not 'fast'"),
        ({"flag": "maybe"}, "flag must be bool, not 'maybe'"),
        ({"mode": "medium"}, "mode must be one of fast, slow, not 'medium'"),
        ({"limit": "ten"}, "limit must be int, not 'ten'"),
        (
            {"zz": "1", "aa": "2"},
            "unknown setting aa, zz; known settings: n, lr, flag, path, mode, name, limit",
        ),
    ],
)
def test_conversion_errors_name_the_setting(values, message):
    with pytest.raises(ZhllamaError) as err:
        build_config(Cfg, values)
    assert str(err.value) == message


def test_missing_required_setting():
    with pytest.raises(ZhllamaError, match="missing setting where"):
        build_config(Needs, {"n": "2"})
    assert build_config(Needs, {"where": "a"}) == Needs(Path("a"))


def test_parse_overrides():
    items = ["a=1", "--b", "2", "--flag", "--d-e=3", "x=y=z"]
    assert parse_overrides(items) == {"a": "1", "b": "2", "flag": "true", "d_e": "3", "x": "y=z"}
    assert parse_overrides([]) == {}
    with pytest.raises(ZhllamaError, match="cannot read setting 'oops': write key=value"):
        parse_overrides(["oops"])
