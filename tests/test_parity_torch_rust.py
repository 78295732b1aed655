"""Cross-engine parity: what the exporter writes, the Rust engine runs like the torch model.

A random tiny model is exported as `llama2c` (v0) and `llama2c-v1`; `zhllama-rs` runs it
greedily and must print exactly the story the torch model's greedy decoding gives. The
tokenizer is one trained here on the synthetic corpus (its .model encodes the prompt, its .bin
serves the engine).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import zhllama_rs
from zhllama.contracts import EngineConfig, SampleSettings
from zhllama.registry import get_registry
from zhllama_tokenizer.binfile import read_tokenizer_bin
from zhllama_tokenizer.train import TrainOptions, TrainResult, train_tokenizer
from zhllama_trainer.model import ModelArgs, Transformer

ROOT = Path(__file__).resolve().parents[1]
BOS, EOS = 1, 2
VOCAB = 1500


def _binary() -> Path:
    for candidate in (ROOT / "target" / "release" / "zhllama-rs", ROOT / ".venv/bin/zhllama-rs"):
        if candidate.is_file():
            return candidate
    found = shutil.which("zhllama-rs")
    if found:
        return Path(found)
    pytest.fail("zhllama-rs is not built (run `just build` or cargo build --release)")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    source = get_registry().create("sources", "synthetic", num_stories=2000)
    out = tmp_path_factory.mktemp("parity_tok")
    return train_tokenizer(source, out, TrainOptions(vocab_size=VOCAB, heldout_stories=20))


def _random_model(seed: int, **kwargs) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(ModelArgs(**kwargs))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.15)
    return model.eval()


def _torch_greedy(model: Transformer, prompt: list[int], steps: int) -> list[int]:
    """run.c's loop at temperature 0: positions 0..steps-1, the prompt forced, stop at BOS/EOS."""
    tokens = list(prompt)
    with torch.no_grad():
        while len(tokens) < steps + 1:
            logits = model(torch.tensor([tokens]))[0, -1]
            nxt = int(torch.argmax(logits))  # the first maximum, as run.c's argmax
            if nxt in (BOS, EOS):
                break
            tokens.append(nxt)
    return tokens


def _decode(pieces: list[bytes], ids: list[int]) -> str:
    """FORMATS.md §2: piece bytes, the leading space after BOS dropped, lossy UTF-8."""
    out = b""
    prev = BOS
    for i in ids[1:]:
        piece = pieces[i]
        if prev == BOS and piece.startswith(b" "):
            piece = piece[1:]
        out += piece
        prev = i
    return out.decode("utf-8", errors="replace")


SHAPES = {
    "shared-gqa": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=VOCAB),
    "separate": dict(dim=48, n_layers=2, n_heads=6, vocab_size=VOCAB, shared_classifier=False),
}


@pytest.mark.parametrize("fmt", ["llama2c", "llama2c-v1"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_rust_greedy_matches_torch(tmp_path, tokenizer, fmt, shape):
    binary = _binary()
    tok_bin, tok_model = tokenizer.bin, tokenizer.model
    model = _random_model(7, max_seq_len=64, **SHAPES[shape])
    path = tmp_path / "model.bin"
    get_registry().create("exporters", fmt).export(model, path)

    text = "从前，有一只小狗"
    sp = get_registry().create("tokenizers", "sentencepiece", model=tok_model)
    steps = 48
    ids = _torch_greedy(model, [BOS, *sp.encode(text)], steps)
    assert len(ids) > len(sp.encode(text)) + 5, "the random model stopped at once: bad test"
    expected = _decode(read_tokenizer_bin(tok_bin, VOCAB).pieces, ids) + "\n"

    run = subprocess.run(
        [binary, path, "-z", tok_bin, "-t", "0", "-n", str(steps), "-i", text, "--threads", "1"],
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    assert run.stdout.decode("utf-8") == expected


def test_rust_logits_match_torch(tmp_path):
    """Position by position, the engine's logits equal the torch model's."""
    model = _random_model(7, max_seq_len=32, **SHAPES["shared-gqa"])
    tokens = [BOS, 50, 300, 7, 411, 99, 260, 12]
    with torch.no_grad():
        want = model(torch.tensor([tokens]))[0]
    for fmt in ("llama2c", "llama2c-v1"):
        path = tmp_path / f"{fmt}.bin"
        get_registry().create("exporters", fmt).export(model, path)
        engine = zhllama_rs.Model(str(path))
        for pos, token in enumerate(tokens):
            got = torch.as_tensor(engine.forward(token, pos))
            assert (got - want[pos]).abs().max().item() < 1e-4, (fmt, pos)


@pytest.mark.parametrize("temperature, top_p, seed", [(1.0, 0.9, 42), (0.8, 0.0, 7), (1.3, 0.5, 1)])
def test_torch_engine_samples_like_zhllama_rs(tmp_path, tokenizer, temperature, top_p, seed):
    """The torch engine's sampler is run.c's (FORMATS.md §3): on the same weights and seed it
    tells the story zhllama_rs tells, with temperature, with and without top-p."""
    model = _random_model(11, max_seq_len=64, **SHAPES["shared-gqa"])
    path = tmp_path / "model.bin"
    get_registry().create("exporters", "llama2c").export(model, path)
    config = EngineConfig(checkpoint=path, tokenizer=tokenizer.model)
    engine = get_registry().create("engines", "torch", config)
    settings = SampleSettings(prompt="从前", steps=64, temperature=temperature, top_p=top_p,
                              seed=seed, stop_at_eos=False)  # fmt: skip
    told = "".join(engine.stream(settings))
    rust = zhllama_rs.Model(path, tokenizer=tokenizer.bin, threads=1)
    kwargs = {k: getattr(settings, k) for k in ("steps", "temperature", "top_p", "seed")}
    assert told == rust.generate("从前", stop_at_eos=False, **kwargs)
    assert len(told) > 20
