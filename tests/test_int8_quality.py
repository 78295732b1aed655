"""int8 inference keeps the model's quality: the Rust engine on int8 weights against f32.

Two models: the reference stories260K (../shared/reference/llama2c; skipped when absent) and a
tiny model trained here on the synthetic corpus. Each is run by `zhllama_rs` three ways: f32,
the exporter's `llama2c-int8` file, and `quantize="q8"` at load (which must give the exporter's
bytes, hence the very same logits). Greedy decoding must agree with f32 for the first 50 tokens
at least, and validation perplexity (through the engine's forward) must stay within 2% of f32's.
The figures are printed.
"""

from __future__ import annotations

import math
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
BOS = 1
GREEDY_TOKENS = 50
# Where the f32 model's two best logits lie closer than this, its greedy choice is a coin toss
# that any rounding can flip (int8's logit error is ~0.01 here); such a flip is a tie, not a
# quantization failure. Greedy agreement therefore follows f32's path, teacher-forced, and
# counts tokens until int8 picks differently where f32 was decisive.
TIE_MARGIN = 0.02
PPL_TOLERANCE = 0.02

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
]


@dataclass(frozen=True)
class Case:
    name: str
    f32: Path
    int8: Path
    tokenizer: Path
    val: list[list[int]]  # held-out windows of token ids
    prompts: list[list[int]]


def export_int8(checkpoint: Path, out: Path) -> Path:
    """The exporter's `llama2c-int8` writer, as `zhllama export ... --format llama2c-int8`."""
    exporter = get_registry().create("exporters", "llama2c-int8", ExportConfig())
    exporter.export_weights(load_any(checkpoint).weights, out)
    return out


@pytest.fixture(scope="module")
def stories260k(tmp_path_factory: pytest.TempPathFactory) -> Case:
    model, tok = REFERENCE / "stories260K.bin", REFERENCE / "tok512.bin"
    if not (model.exists() and tok.exists()):
        pytest.skip(f"{REFERENCE} is absent (the shared reference folder is not beside the repo)")
    out = tmp_path_factory.mktemp("int8_260k")
    t = zhllama_rs.Tokenizer(tok, 512)
    val = [t.encode(text) for text in ENGLISH]
    prompts = [[BOS], t.encode("Once upon a time, there was a"), t.encode("Tom had a")]
    return Case("stories260K", model, export_int8(model, out / "q8.bin"), tok, val, prompts)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Case:
    """The tiny preset (dim 64, hidden 192: group size 64) trained on its own 300-step schedule,
    as the demo trains it (validation perplexity ~5). A model stopped at 150 steps (perplexity
    ~14) has logits so flat that int8's error on them (up to ~0.1 here) flips decisive choices
    by chance; that says nothing about a model anyone would quantize."""
    out = tmp_path_factory.mktemp("int8_trained")
    stories = 3000
    source = get_registry().create("sources", "synthetic", num_stories=stories)
    tok = train_tokenizer(source, out, TrainOptions(vocab_size=1500, heldout_stories=50))
    opts = PretokenizeOptions(val_fraction=0.03, source_settings={"num_stories": stories})
    pretokenize("synthetic", tok.model, out / "shards", opts)
    torch.set_num_threads(1)
    c = make_config(
        "tiny",
        {"data_dir": out / "shards", "out_dir": out / "run", "max_seq_len": 128,
         "eval_interval": 300, "eval_iters": 2,
         "progress": False, "plot": False, "device": "cpu", "dtype": "float32", "threads": 1},
    )  # fmt: skip
    train(c)
    run = out / "run"
    shards = ShardSet(out / "shards")
    ids = np.concatenate(shards.arrays("val")).astype(np.int64).tolist()
    windows = [ids[i : i + 128] for i in range(0, min(len(ids), 4 * 128), 128)]
    prompts = [[BOS], windows[0][:8], windows[1][:16]]
    return Case(
        "trained tiny",
        run / "model.bin",
        export_int8(run / "ckpt.pt", out / "q8.bin"),
        run / "tokenizer.bin",
        windows,
        prompts,
    )


def greedy(model: zhllama_rs.Model, prompt: list[int], n: int) -> list[int]:
    """`n` greedy tokens after `prompt` through the engine's forward (EOS does not stop it)."""
    model.reset()
    toks = list(prompt)
    for pos in range(len(prompt) - 1 + n):
        logits = model.forward(toks[pos], pos)
        if pos >= len(prompt) - 1:
            toks.append(int(np.argmax(logits)))
    return toks[len(prompt) :]


def decisive_agreement(f32: zhllama_rs.Model, q8: zhllama_rs.Model, prompt: list[int]) -> int:
    """Tokens of f32's greedy continuation that int8 also picks, up to its first decisive miss.

    Both models read f32's greedy path (teacher-forced), so one tie does not derail the rest.
    """
    path = prompt + greedy(f32, prompt, GREEDY_TOKENS + 14)
    f32.reset()
    q8.reset()
    for pos in range(len(path) - 1):
        want, got = f32.forward(path[pos], pos), q8.forward(path[pos], pos)
        if pos < len(prompt) - 1:
            continue
        top2 = np.sort(want)[-2:]
        if int(np.argmax(got)) != path[pos + 1] and top2[1] - top2[0] >= TIE_MARGIN:
            return pos - (len(prompt) - 1)
    return len(path) - len(prompt)


def perplexity(model: zhllama_rs.Model, windows: list[list[int]]) -> float:
    nll, count = 0.0, 0
    for ids in windows:
        model.reset()
        for pos in range(len(ids) - 1):
            logits = model.forward(ids[pos], pos).astype(np.float64)
            top = logits.max()
            nll += top + math.log(np.exp(logits - top).sum()) - logits[ids[pos + 1]]
            count += 1
    return math.exp(nll / count)


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

    agree, free = [], []
    for prompt in case.prompts:
        want = greedy(f32, prompt, GREEDY_TOKENS + 14)
        got = greedy(q8, prompt, GREEDY_TOKENS + 14)
        same = next((i for i, (a, b) in enumerate(zip(want, got, strict=True)) if a != b), None)
        free.append(len(want) if same is None else same)
        agree.append(decisive_agreement(f32, q8, prompt))

    ppl_f32, ppl_q8 = perplexity(f32, case.val), perplexity(q8, case.val)
    rel = ppl_q8 / ppl_f32 - 1
    tokens = sum(len(w) - 1 for w in case.val)
    report = (
        f"{case.name}: group size {q8.group_size}; greedy agreement with f32 (tokens, per "
        f"prompt): {free} free-running, {agree} up to a decisive miss; validation "
        f"perplexity on {tokens} tokens: f32 {ppl_f32:.4f}, "
        f"int8 {ppl_q8:.4f} ({100 * rel:+.2f}%)"
    )
    with capsys.disabled():
        print(f"\n[int8 quality] {report}")
    assert min(agree) >= GREEDY_TOKENS, report
    assert abs(rel) <= PPL_TOLERANCE, report
