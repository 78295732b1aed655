"""The one model-shape type: the training settings, ModelArgs and the exporter's readers check
a shape by the same rules, and ModelArgs resolves into the shape the exporter writes."""

from __future__ import annotations

import pytest
from zhllama.errors import ZhllamaError
from zhllama_trainer.architecture import ModelShape
from zhllama_trainer.config import make_config
from zhllama_trainer.model import ModelArgs


def test_model_args_resolve_their_defaults_into_the_shape() -> None:
    args = ModelArgs(dim=64, n_layers=2, n_heads=8, vocab_size=300, max_seq_len=32)
    s = args.shape
    assert (s.n_kv_heads, s.hidden_dim, s.head_dim, s.kv_dim) == (8, 192, 8, 64)
    assert ModelArgs.of_shape(s).shape == s


def test_every_stage_reports_a_bad_shape_alike() -> None:
    rule = "n_kv_heads=4 must divide n_heads=6"
    with pytest.raises(ZhllamaError, match=f"settings: {rule}"):
        make_config("15M", {"n_kv_heads": "4"})
    with pytest.raises(ZhllamaError, match=f"model: {rule}"):
        ModelArgs(n_kv_heads=4)
    with pytest.raises(ZhllamaError, match=f"x.bin: {rule}"):
        ModelShape(288, 768, 6, 6, 4, 5000, 256).check("x.bin")
    with pytest.raises(ZhllamaError, match="x.bin: vocab_size must be positive, not -1"):
        ModelShape(288, 768, 6, 6, 6, -1, 256).check("x.bin")
    with pytest.raises(ZhllamaError, match="head size dim/n_heads=9 must be even"):
        make_config("15M", {"dim": "54"})
