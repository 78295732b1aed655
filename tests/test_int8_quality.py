"""int8 inference keeps the model's quality: the Rust engine on int8 weights against f32.

Measured the way llama.cpp's perplexity tool judges a quantization (`--kl-divergence`): over every
position of held-out text, teacher-forced, the KL divergence of int8's next-token distribution
from f32's (mean and 99th percentile), the share of positions where both put the same token on
top, and the ratio of their perplexities. Greedy agreement over a whole story is not used: on a
dim-64 model two logits often lie within int8's rounding of each other, and which one wins then
depends on the CPU's SIMD path, not on the quality of the quantization.

Two models: the published stories260K (../shared/reference/llama2c; skipped when absent) and a
tiny model trained here on the synthetic corpus. Each runs in `zhllama_rs` three ways: f32, the
exporter's `llama2c-int8` file, and `quantize="q8"` at load, which must give the exporter's bytes
and hence the very same logits (the one exact check). The figures are printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import zhllama_rs
from zhllama.registry import get_registry
from zhllama_data.pretokenize import PretokenizeOptions, pretokenize
from zhllama_data.shards import ShardSet
from zhllama_exporter.components import ExportConfig
from zhllama_exporter.load import load_any
from zhllama_tokenizer.train import TrainOptions, train_tokenizer
from zhllama_trainer.config import make_config
from zhllama_trainer.train import train

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / ".." / "shared" / "reference" / "llama2c"
WINDOW = 128

# Bounds, each several times what the AVX2 and the AVX-512/VNNI paths give on these models
# (measured figures are in the printed report; both paths round int8 the same way but sum in
# different orders, which moves these figures by a few percent, not by factors).
MAX_KL_MEAN = 2e-3
MAX_KL_P99 = 2e-2
MIN_TOP1 = 0.95
MAX_PPL_RATIO = 1.02

# Held-out English for stories260K (written for this test, not from its training data).
ENGLISH = [
    "Once upon a time, there was a little dog named Max. Max liked to run in the big green "
    "park near his house. One day, Max saw a red ball under a tree. He ran to the ball and "
    'picked it up. A girl named Sue came and said, "That is my ball!" Max gave the ball to '
    'Sue. Sue was happy and said, "Thank you, Max. Do you want to play with me?" They played '
    "all day and became best friends.",
    "Tom had a small boat. He loved to play with it in the bath. One day, his mom said, "
    '"Tom, let\'s go to the lake." Tom was very excited. At the lake, he put his boat on the '
    "water. The wind was strong and the boat went far away. Tom was sad. Then a kind man "
    "helped him get the boat back. Tom said thank you and smiled.",
    "Lily found a shiny stone in the garden. She showed it to her brother Ben. Ben wanted the "
    'stone too, and they started to fight. Mom came out and said, "You can share it. Take '
    'turns." Lily let Ben hold the stone first. Ben smiled and gave it back after a while. '
    "They put the stone on the window so they could both see it every day.",
]


@dataclass(frozen=True)
class Case:
    name: str
    f32: Path
    int8: Path
    val: list[list[int]]  # held-out windows of token ids, each starting at position 0


def export_int8(checkpoint: Path, out: Path) -> Path:
    """The exporter's `llama2c-int8` writer, as `zhllama export ... --format llama2c-int8`."""
    exporter = get_registry().create("exporters", "llama2c-int8", ExportConfig())
    exporter.export(load_any(checkpoint), out)
    return out


@pytest.fixture(scope="module")
def stories260k(tmp_path_factory: pytest.TempPathFactory) -> Case:
    model, tok = REFERENCE / "stories260K.bin", REFERENCE / "tok512.bin"
    if not (model.exists() and tok.exists()):
        pytest.skip(f"{REFERENCE} is absent (the shared reference folder is not beside the repo)")
    out = tmp_path_factory.mktemp("int8_260k")
    t = zhllama_rs.Tokenizer(tok, 512)
    val = [t.encode(text) for text in ENGLISH]
    return Case("stories260K", model, export_int8(model, out / "q8.bin"), val)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """The tiny preset (dim 64, hidden 192: group size 64) trained on its own 300-step schedule,
    as the demo trains it (validation perplexity ~5)."""
    out = tmp_path_factory.mktemp("int8_trained")
    stories = 3000
    source = get_registry().create("sources", "synthetic", num_stories=stories)
    tok = train_tokenizer(source, out, TrainOptions(vocab_size=1500, heldout_stories=50))
    opts = PretokenizeOptions(val_fraction=0.03, source_settings={"num_stories": stories})
    pretokenize("synthetic", tok.model, out / "shards", opts)
    torch.set_num_threads(1)
    c = make_config(
        "tiny",
        {"data_dir": out / "shards", "out_dir": out / "run", "max_seq_len": WINDOW,
         "eval_interval": 300, "eval_iters": 2,
         "progress": False, "plot": False, "device": "cpu", "dtype": "float32", "threads": 1},
    )  # fmt: skip
    train(c)
    run = out / "run"
    ids = np.concatenate(ShardSet(out / "shards").arrays("val")).astype(np.int64).tolist()
    windows = [ids[i : i + WINDOW] for i in range(0, min(len(ids), 8 * WINDOW), WINDOW)]
    return Case("trained tiny", run / "model.bin", export_int8(run / "ckpt.pt", out / "q8.bin"),
                windows)  # fmt: skip


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max()
    return z - np.log(np.exp(z).sum())


@dataclass(frozen=True)
class Divergence:
    kl_mean: float
    kl_p99: float
    top1: float  # share of positions where int8's most likely token is f32's
    ppl_f32: float
    ppl_q8: float
    positions: int

    @property
    def ppl_ratio(self) -> float:
        return self.ppl_q8 / self.ppl_f32

    def __str__(self) -> str:
        return (
            f"KL(f32||int8) mean {self.kl_mean:.2e}, p99 {self.kl_p99:.2e}; top-1 agreement "
            f"{100 * self.top1:.2f}%; perplexity f32 {self.ppl_f32:.4f}, int8 {self.ppl_q8:.4f} "
            f"(ratio {self.ppl_ratio:.5f}) over {self.positions} positions"
        )


def divergence(f32: zhllama_rs.Model, q8: zhllama_rs.Model, windows: list[list[int]]) -> Divergence:
    """Teacher-forced over every position of `windows`: how far int8 predicts from f32."""
    kl, same, nll_f32, nll_q8 = [], [], [], []
    for ids in windows:
        f32.reset()
        q8.reset()
        for pos in range(len(ids) - 1):
            want, got = f32.forward(ids[pos], pos), q8.forward(ids[pos], pos)
            lp, lq = log_softmax(want), log_softmax(got)
            kl.append(float(np.sum(np.exp(lp) * (lp - lq))))
            same.append(int(np.argmax(want)) == int(np.argmax(got)))
            nll_f32.append(-lp[ids[pos + 1]])
            nll_q8.append(-lq[ids[pos + 1]])
    return Divergence(
        kl_mean=float(np.mean(kl)),
        kl_p99=float(np.percentile(kl, 99)),
        top1=float(np.mean(same)),
        ppl_f32=float(np.exp(np.mean(nll_f32))),
        ppl_q8=float(np.exp(np.mean(nll_q8))),
        positions=len(kl),
    )


@pytest.mark.parametrize("case_name", ["stories260k", "trained"])
def test_int8_matches_f32(case_name: str, request: pytest.FixtureRequest, capsys) -> None:
    case: Case = request.getfixturevalue(case_name)
    f32 = zhllama_rs.Model(case.f32, threads=2)
    q8 = zhllama_rs.Model(case.int8, threads=2)
    at_load = zhllama_rs.Model(case.f32, threads=1, quantize="q8")
    assert not f32.quantized and q8.quantized and at_load.quantized
    assert q8.group_size == at_load.group_size > 0

    # quantizing at load gives the exporter's bytes: the same logits, bit for bit
    for pos, tok in enumerate(case.val[0][:20]):
        np.testing.assert_array_equal(q8.forward(tok, pos), at_load.forward(tok, pos))

    d = divergence(f32, q8, case.val)
    report = f"{case.name}: group size {q8.group_size}; {d}"
    with capsys.disabled():
        print(f"\n[int8 quality] {report}")
    assert d.positions >= 400, report
    assert d.kl_mean <= MAX_KL_MEAN, report
    assert d.kl_p99 <= MAX_KL_P99, report
    assert d.top1 >= MIN_TOP1, report
    assert 1 / MAX_PPL_RATIO <= d.ppl_ratio <= MAX_PPL_RATIO, report
