"""A preset from an outside package trains: `zhllama train size=NAME` reads presets from the
registry, and the registry reads them from entry points (a real dist-info folder on sys.path)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from zhllama.cli import main
from zhllama.registry import get_registry
from zhllama_trainer.checkpoint import load_model

PLUGIN = """
from zhllama.contracts import PresetSettings
from zhllama.registry import Component

MICRO = {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "max_seq_len": 32,
         "vocab_size": None, "batch_size": 4, "gradient_accumulation_steps": 1, "max_iters": 3,
         "eval_interval": 3, "eval_iters": 1, "warmup_iters": 1, "learning_rate": 1e-3}
micro = Component("micro", "a plug-in's very small model", lambda: PresetSettings("micro", MICRO))
not_a_preset = Component("notpreset", "gives no settings", lambda: 42)
"""


@pytest.fixture
def plugin_preset(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "micro_zh_preset.py").write_text(PLUGIN, encoding="utf-8")
    dist = site / "micro_zh_preset-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: micro-zh-preset\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[zhllama.presets]\nmicro = micro_zh_preset:micro\n"
        "notpreset = micro_zh_preset:not_a_preset\n"
    )
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    get_registry(refresh=True)
    try:
        yield
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("micro_zh_preset", None)
        importlib.invalidate_caches()
        get_registry(refresh=True)


def test_a_plugin_preset_trains(plugin_preset, shards: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    argv = ["train", "size=micro", f"data_dir={shards}", f"out_dir={run}", "device=cpu",
            "dtype=float32", "progress=false", "plot=false", "threads=1"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    _, args = load_model(run / "ckpt.pt")
    assert (args.dim, args.n_layers, args.n_heads, args.n_kv_heads) == (32, 2, 4, 2)
    assert args.vocab_size == 1500  # vocab_size None: from the data's manifest


def test_a_preset_that_is_no_preset_is_one_error(plugin_preset, capsys) -> None:
    assert main(["train", "size=notpreset"]) == 1
    err = capsys.readouterr().err
    assert "preset 'notpreset' gave a int, not a Preset" in err and "Traceback" not in err
    assert main(["train", "size=nothere"]) == 1
    assert "unknown size 'nothere'; presets: 110M, 15M, 42M, micro, notpreset, tiny" in (
        capsys.readouterr().err
    )
