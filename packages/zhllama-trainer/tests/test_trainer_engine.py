"""The torch engine: llama2.c's sampler, prompt handling, and `zhllama eval`."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from zhllama.cli import main
from zhllama.contracts import EngineConfig, SampleSettings
from zhllama.registry import get_registry
from zhllama_trainer.checkpoint import load_checkpoint
from zhllama_trainer.sampling import Sampler, XorShiftRng, sample_top_p


def test_xorshift_is_run_c_random_u32() -> None:
    # run.c: s ^= s >> 12; s ^= s << 25; s ^= s >> 27; (s * 0x2545F4914F6CDD1D) >> 32
    rng = XorShiftRng(42)
    s = 42
    s ^= s >> 12
    s ^= (s << 25) % 2**64
    s ^= s >> 27
    assert rng.next_u32() == (s * 0x2545F4914F6CDD1D % 2**64) >> 32
    coins = [XorShiftRng(7).next_f32() for _ in range(2)]
    assert coins[0] == coins[1] and 0 <= coins[0] < 1


def test_top_p_keeps_the_nucleus() -> None:
    p = np.array([0.05, 0.5, 0.15, 0.3], dtype=np.float32)
    # p=0.7: sorted 0.5, 0.3 (cum 0.8 > 0.7) form the nucleus; the coin scales by 0.8
    assert sample_top_p(p, 0.7, np.float32(0.5)) == 1  # r = 0.40 < 0.5
    assert sample_top_p(p, 0.7, np.float32(0.7)) == 3  # r = 0.56 ≥ 0.5
    assert sample_top_p(p, 0.9, np.float32(0.99)) == 2  # nucleus 0.5, 0.3, 0.15


def test_temperature_zero_takes_the_first_maximum() -> None:
    assert Sampler(0.0, 0.9, 1)(np.array([1.0, 3.0, 3.0, 2.0])) == 1


@pytest.fixture(scope="module")
def checkpoint(tiny_run: Path) -> Path:
    return tiny_run / "ckpt.pt"


def test_torch_engine_streams_whole_characters(checkpoint: Path) -> None:
    engine = get_registry().create("engines", "torch", EngineConfig(checkpoint=checkpoint))
    settings = SampleSettings(prompt="从前", steps=40, temperature=1.0, top_p=0.9, seed=42)
    pieces = list(engine.stream(settings))
    text = "".join(pieces)
    assert text.startswith("从前") and len(text) > 2
    assert all("\ufffd" not in p for p in pieces[:-1])
    assert "".join(engine.stream(settings)) == text  # same seed, same story


def test_greedy_engine_matches_the_model(checkpoint: Path) -> None:
    engine = get_registry().create("engines", "torch", EngineConfig(checkpoint=checkpoint))
    tok, model = engine.tokenizer, engine.model
    settings = SampleSettings(prompt="从前", steps=30, temperature=0.0, stop_at_eos=False)
    text = "".join(engine.stream(settings))
    prompt = [tok.bos_id] + tok.encode("从前")
    # `steps` positions after BOS, as run.c counts them
    new = settings.steps + 1 - len(prompt)
    ids = model.generate(torch.tensor([prompt]), new, temperature=0.0)[0].tolist()
    ids = ids[1 : ids.index(tok.bos_id, 1)] if tok.bos_id in ids[1:] else ids[1:]
    assert text == tok.decode(ids)


def test_eval_command(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(checkpoint), "eval_iters=2", "device=cpu"]) == 0
    out, err = capsys.readouterr()
    assert "val loss" in out and "perplexity" in out and err == ""
    assert main(["eval", str(checkpoint), "--eval-iters", "2", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "val loss" in out and "deprecated: --eval-iters VALUE" in err


def test_eval_refuses_shards_of_another_tokenizer(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 16 (3): the same vocabulary size, another tokenizer: the loss would be meaningless
    other = tmp_path / "other"
    shards = Path(load_checkpoint(checkpoint)["config"]["data_dir"])
    shutil.copytree(shards, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["tokenizer_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert main(["eval", str(checkpoint), f"data_dir={other}", "eval_iters=1"]) == 1
    err = capsys.readouterr().err
    assert "tokenized with another tokenizer" in " ".join(err.split()), err


RUNC = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "llama2c"


def _runc_cases() -> list[tuple[str, list[str]]]:
    cases = RUNC / "runc" / "cases.tsv"
    if not cases.is_file():
        return []
    return [
        (n, shlex.split(a)) for n, a in (ln.split("\t") for ln in cases.read_text().splitlines())
    ]


@pytest.mark.parametrize(
    "name, args",
    _runc_cases() or [pytest.param("", [], marks=pytest.mark.skip(reason=f"{RUNC} is absent"))],
)
def test_torch_engine_prints_what_run_c_printed(name: str, args: list[str]) -> None:
    """Conformance: stories260K through the torch engine, for every recorded run.c case
    (greedy, temperature with and without top-p, seeds, prompts), gives run.c's stdout."""
    flags = dict(zip(args[::2], args[1::2], strict=True))
    engine = get_registry().create(
        "engines",
        "torch",
        EngineConfig(checkpoint=RUNC / "stories260K.bin", tokenizer=RUNC / "tok512.model"),
    )
    settings = SampleSettings(
        prompt=flags.get("-i", ""),
        steps=int(flags.get("-n", 256)),
        temperature=float(flags.get("-t", 1.0)),
        top_p=float(flags.get("-p", 0.9)),
        seed=int(flags["-s"]) if "-s" in flags else None,
        stop_at_eos=False,  # run.c stops at BOS only
    )
    want = (RUNC / "runc" / f"{name}.out").read_text(encoding="utf-8")
    assert "".join(engine.stream(settings)) + "\n" == want


def test_sample_picks_the_engine_from_the_file(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `zhllama sample run/ckpt.pt` (no --engine) runs the torch engine, run/model.bin the rust one
    args = ["-i", "从前", "-s", "42", "-n", "30", "-t", "0"]
    outs = {}
    for name, engine in (("ckpt.pt", "torch"), ("model.bin", "rust")):
        path = checkpoint.parent / name
        assert main(["sample", str(path), *args]) == 0, capsys.readouterr().err
        outs[name] = capsys.readouterr().out
        assert main(["sample", str(path), "--engine", engine, *args]) == 0
        assert capsys.readouterr().out == outs[name]
    # the same greedy story either way (the export of the same weights)
    assert outs["ckpt.pt"] == outs["model.bin"]
    assert outs["ckpt.pt"].startswith("从前")
