"""A throwaway outside package, installed only on sys.path: a real dist-info folder with
entry points, as pip would leave it, plus the modules it names (one of them broken)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from zhllama.registry import get_registry

OUTSIDE_MODULE = '''
from dataclasses import dataclass

import typer

from zhllama.registry import Component


@dataclass
class EchoConfig:
    count: int = 2
    word: str = "你好"


class EchoSource:
    name = "outside"

    def __init__(self, config: EchoConfig) -> None:
        self.config = config

    def stories(self):
        for i in range(self.config.count):
            yield f"{self.config.word}{i}"


source = Component("outside", "a source from an outside package", EchoSource, EchoConfig)
plain = Component("plain", "a component without settings", lambda: "plain object")


def hello(name: str = "世界") -> None:
    """Say hello (a command from an outside package)."""
    typer.echo(f"hello {name}")
'''

ENTRY_POINTS = """
[zhllama.sources]
outside = outside_zh_plugin:source

[zhllama.presets]
plain = outside_zh_plugin:plain
notacomp = notacomp_zh_plugin:thing

[zhllama.exporters]
broken = broken_zh_plugin:exporter

[zhllama.commands]
outside-hello = outside_zh_plugin:hello
broken-cmd = broken_zh_plugin:app
"""
PLUGIN_MODULES = ("outside_zh_plugin", "broken_zh_plugin", "notacomp_zh_plugin")


def make_plugin_site(site: Path) -> Path:
    site.mkdir(parents=True, exist_ok=True)
    (site / "outside_zh_plugin.py").write_text(OUTSIDE_MODULE, encoding="utf-8")
    (site / "broken_zh_plugin.py").write_text(
        'raise RuntimeError("boom: this plugin is broken")\n', encoding="utf-8"
    )
    (site / "notacomp_zh_plugin.py").write_text("thing = 42\n", encoding="utf-8")
    dist = site / "outside_zh_plugin-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: outside-zh-plugin\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    return site


@pytest.fixture
def plugin_site(tmp_path: Path):
    """The outside package importable in this process; the registry reread with it."""
    site = make_plugin_site(tmp_path / "site")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    get_registry(refresh=True)
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in PLUGIN_MODULES:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        get_registry(refresh=True)


@pytest.fixture
def plugin_files(tmp_path: Path) -> Path:
    """The outside package's folder, NOT on this process's sys.path (for subprocesses)."""
    return make_plugin_site(tmp_path / "site")
