"""Every installed component makes what its kind's contract (zhllama.contracts) declares."""

from __future__ import annotations

import pytest
from zhllama.contracts import Exporter, Preset, RandomAccessSource, Source, Tokenizer
from zhllama.registry import get_registry


@pytest.mark.parametrize("name", sorted(get_registry().components("exporters")))
def test_exporters(name):
    assert isinstance(get_registry().create("exporters", name), Exporter)


@pytest.mark.parametrize("name", sorted(get_registry().components("presets")))
def test_presets(name):
    preset = get_registry().create("presets", name)
    assert isinstance(preset, Preset) and preset.name == name
    assert {"dim", "n_layers", "n_heads"} <= set(preset.settings)


def test_sources(tmp_path):
    (tmp_path / "a.txt").write_text("从前有只猫。\n", encoding="utf-8")
    synthetic = get_registry().create("sources", "synthetic", num_stories=3)
    assert isinstance(synthetic, RandomAccessSource)
    assert [synthetic.story(i) for i in range(len(synthetic))] == list(synthetic.stories())
    jsonl = get_registry().create("sources", "jsonl", path=tmp_path)
    assert isinstance(jsonl, Source) and not isinstance(jsonl, RandomAccessSource)
    assert list(jsonl.stories()) == ["从前有只猫。"]


def test_tokenizer(tmp_path):
    from zhllama_tokenizer.train import TrainOptions, train_tokenizer

    source = get_registry().create("sources", "synthetic", num_stories=300)
    model = train_tokenizer(source, tmp_path, TrainOptions(vocab_size=1500, heldout_stories=10))
    tok = get_registry().create("tokenizers", "sentencepiece", model=model.model)
    assert isinstance(tok, Tokenizer)
    assert tok.decode(tok.encode("从前")) == "从前" and len(tok.sha256) == 64
