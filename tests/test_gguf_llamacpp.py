"""llama.cpp itself runs our GGUF exports right (through llama-cpp-python, which builds llama.cpp
from its source package; `just test` installs it with the `llamacpp` dependency group).

Two models, each exported by the real `zhllama export ... --format gguf` command: the published
stories260K (../shared/reference/llama2c; skipped when absent) and a tiny model trained here on
the synthetic Chinese corpus. For each:
- llama.cpp's greedy tokens equal `zhllama_rs`'s for 64 tokens after a prompt (English for the
  English stories260K, Chinese for ours), on the f32 GGUF against the llama2c .bin;
- llama.cpp's tokenizer, reading only the GGUF's metadata, gives sentencepiece's ids on Chinese
  lines with spaces, digits, latin letters and characters only byte fallback can spell, and on
  held-out stories; and on runs of spaces once they are collapsed (see below);
- q8_0 against f32, both in llama.cpp: the share of held-out positions (teacher-forced) whose
  top-1 token agrees, printed.

llama.cpp's sentencepiece tokenizer does not apply sentencepiece's `remove_extra_whitespaces`
(collapsing runs of spaces, stripping the ends); the GGUF records the flag, llama.cpp ignores it
for this tokenizer type. `test_llama_cpp_whitespace` pins down exactly that difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import torch
import zhllama_rs
from zhllama.cli import main
from zhllama.registry import get_registry
from zhllama_data.pretokenize import PretokenizeOptions, pretokenize
from zhllama_data.shards import ShardSet
from zhllama_tokenizer.train import TrainOptions, train_tokenizer
from zhllama_trainer.config import make_config
from zhllama_trainer.train import train

llama_cpp = pytest.importorskip(
    "llama_cpp",
    reason="llama-cpp-python is not installed: `uv sync --group llamacpp` (just test does it)",
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / ".." / "shared" / "reference" / "llama2c"
BOS = 1
STEPS = 64
GGML_TYPE_F32 = 0  # KV cache in f32, as zhllama_rs keeps it (llama.cpp's default is f16)
Q8_MIN_TOP1 = 0.9

CHINESE = [
    "从前，有一个小女孩叫莉莉。她喜欢在公园里玩。",
    "他说：“你好！我今年5岁了，123。”\n然后他们一起回家了。",
    "小猫咪🐱看见了一只蝴蝶，觉得很奇怪：这是什么？",
    "皮皮和 Tom 一起玩 LEGO，玩了 2 个小时。",
    "龘靐齉爩 are rare: ñ, é, ß, Ω.",
    "",
]
# runs of spaces and spaces at the ends: sentencepiece collapses and strips them
WHITESPACE = ["  两个  空格 ", " 前\n 后 ", "a  b", " 小猫"]
ENGLISH = [
    "Once upon a time, there was a little dog named Max.",
    'Tom said, "I have 3 red balls!" His mom smiled.',
    "Lily saw a bird. The bird was blue and it sang a song.",
]


@dataclass(frozen=True)
class Exported:
    name: str
    llama2c: Path  # what zhllama_rs runs
    f32: Path  # GGUF
    q8: Path  # GGUF
    tokenizer: Path  # sentencepiece .model
    prompt: str
    lines: list[str]  # tokenizer agreement lines
    heldout: list[list[int]]  # token windows for the q8_0 comparison


def export(source: Path, out: Path, *args: str) -> Path:
    rc = main(["export", str(source), "-o", str(out), "--format", "gguf", *args])
    assert rc == 0, f"zhllama export {source} {out} {args} failed"
    return out


@pytest.fixture(scope="module")
def stories260k(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    model, tok = REFERENCE / "stories260K.bin", REFERENCE / "tok512.model"
    if not (model.exists() and tok.exists()):
        pytest.skip(f"{REFERENCE} is absent (the shared reference folder is not beside the repo)")
    out = tmp_path_factory.mktemp("gguf_260k")
    sp = spm.SentencePieceProcessor(model_file=str(tok))
    return Exported(
        "stories260K",
        model,
        export(model, out / "f32.gguf", "--tokenizer", str(tok)),
        export(model, out / "q8.gguf", "--tokenizer", str(tok), "--dtype", "q8_0"),
        tok,
        "Once upon a time, there was a little girl",
        ENGLISH + CHINESE,
        [[BOS, *sp.encode(" ".join(ENGLISH * 3))]],
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """The tiny preset (dim 64, hidden 192: every row fills q8_0 blocks) trained briefly on the
    synthetic corpus; its ckpt.pt is exported (the tokenizer found through the checkpoint)."""
    out = tmp_path_factory.mktemp("gguf_trained")
    stories = 2000
    source = get_registry().create("sources", "synthetic", num_stories=stories)
    tok = train_tokenizer(source, out, TrainOptions(vocab_size=1500, heldout_stories=50))
    opts = PretokenizeOptions(val_fraction=0.03, source_settings={"num_stories": stories})
    pretokenize("synthetic", tok.model, out / "shards", opts)
    torch.set_num_threads(1)
    c = make_config(
        "tiny",
        {"data_dir": out / "shards", "out_dir": out / "run", "max_seq_len": 128,
         "max_iters": 150, "eval_interval": 150, "eval_iters": 1,
         "progress": False, "plot": False, "device": "cpu", "dtype": "float32", "threads": 1},
    )  # fmt: skip
    train(c)
    run = out / "run"
    ids = np.concatenate(ShardSet(out / "shards").arrays("val")).astype(np.int64).tolist()
    heldout = [ids[i : i + 128] for i in range(0, min(len(ids), 3 * 128), 128)]
    held_stories = list(
        get_registry().create("sources", "synthetic", num_stories=8, seed=777).stories()
    )
    return Exported(
        "trained tiny",
        run / "model.bin",
        export(run / "ckpt.pt", out / "f32.gguf"),
        export(run / "ckpt.pt", out / "q8.gguf", "--dtype", "q8_0"),
        run / "tokenizer.model",
        "从前，森林里住着一只小兔子",
        CHINESE + held_stories,
        heldout,
    )


def llama(path: Path, **kw) -> llama_cpp.Llama:
    return llama_cpp.Llama(
        model_path=str(path),
        n_ctx=512,
        n_threads=2,
        logits_all=True,
        type_k=GGML_TYPE_F32,
        type_v=GGML_TYPE_F32,
        verbose=False,
        **kw,
    )


def greedy_llama_cpp(llm: llama_cpp.Llama, prompt: list[int], n: int) -> list[int]:
    llm.reset()
    llm.eval(prompt)
    out: list[int] = []
    for _ in range(n):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([out[-1]])
    return out


def greedy_rs(model: zhllama_rs.Model, prompt: list[int], n: int) -> list[int]:
    """`n` greedy tokens after `prompt` through the engine's forward (EOS does not stop it)."""
    model.reset()
    toks = list(prompt)
    for pos in range(len(prompt) - 1 + n):
        logits = model.forward(toks[pos], pos)
        if pos >= len(prompt) - 1:
            toks.append(int(np.argmax(logits)))
    return toks[len(prompt) :]


CASES = ["stories260k", "trained"]


@pytest.mark.parametrize("case_name", CASES)
def test_llama_cpp_greedy_equals_zhllama_rs(case_name, request, capsys) -> None:
    case: Exported = request.getfixturevalue(case_name)
    sp = spm.SentencePieceProcessor(model_file=str(case.tokenizer))
    prompt = [BOS, *sp.encode(case.prompt)]
    llm = llama(case.f32)
    assert llm.tokenize(case.prompt.encode(), add_bos=True) == prompt
    want = greedy_rs(zhllama_rs.Model(case.llama2c, threads=2), prompt, STEPS)
    got = greedy_llama_cpp(llm, prompt, STEPS)
    with capsys.disabled():
        print(f"\n[gguf] {case.name}, llama.cpp = zhllama_rs: {case.prompt!r} → {sp.decode(got)!r}")
    assert got == want


@pytest.mark.parametrize("case_name", CASES)
def test_llama_cpp_tokenizer_equals_sentencepiece(case_name, request) -> None:
    case: Exported = request.getfixturevalue(case_name)
    sp = spm.SentencePieceProcessor(model_file=str(case.tokenizer))
    llm = llama(case.f32, vocab_only=True)
    byte_fallback = 0
    for text in case.lines:
        want = [BOS, *sp.encode(text)]
        assert llm.tokenize(text.encode(), add_bos=True) == want, text
        byte_fallback += sum(3 <= i < 259 for i in want)
        # after BOS the dummy prefix's space is dropped, as sentencepiece does
        assert llm.detokenize(want).decode() == sp.decode(want[1:]), text
    assert byte_fallback > 0  # the lines do reach the byte tokens


def collapse(text: str) -> str:
    """sentencepiece's remove_extra_whitespaces on ASCII spaces (FORMATS.md §2, step 1)."""
    return re.sub(" {2,}", " ", text).strip(" ")


@pytest.mark.parametrize("case_name", CASES)
def test_llama_cpp_whitespace(case_name, request) -> None:
    case: Exported = request.getfixturevalue(case_name)
    sp = spm.SentencePieceProcessor(model_file=str(case.tokenizer))
    llm = llama(case.f32, vocab_only=True)
    for text in WHITESPACE:
        want = [BOS, *sp.encode(text)]
        # collapsed first, llama.cpp agrees; raw, it keeps every space sentencepiece drops
        assert llm.tokenize(collapse(text).encode(), add_bos=True) == want, text
        assert llm.tokenize(text.encode(), add_bos=True) != want, text


@pytest.mark.parametrize("case_name", CASES)
def test_q8_0_top1_agreement_with_f32(case_name, request, capsys) -> None:
    case: Exported = request.getfixturevalue(case_name)
    f32, q8 = llama(case.f32), llama(case.q8)
    agree = total = 0
    for window in case.heldout:
        for llm in (f32, q8):
            llm.reset()
            llm.eval(window)
        a = np.argmax(f32.scores[: len(window)], axis=1)
        b = np.argmax(q8.scores[: len(window)], axis=1)
        agree += int((a == b).sum())
        total += len(window)
    share = agree / total
    with capsys.disabled():
        print(f"\n[gguf q8_0] {case.name}: top-1 agreement with f32 in llama.cpp "
              f"{share:.4f} ({agree}/{total} positions, teacher-forced)")  # fmt: skip
    assert share >= Q8_MIN_TOP1
