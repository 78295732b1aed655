"""The `rust` component of zhllama.engines and `zhllama sample --engine rust`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import zhllama_rs
from zhllama.engines import EngineConfig, SampleSettings
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry


def test_registered_and_streams(tiny) -> None:
    component = get_registry().get("engines", "rust")
    assert component.config is EngineConfig
    engine = get_registry().create(
        "engines", "rust", EngineConfig(tiny.model, tiny.tokenizer, threads=1)
    )
    settings = SampleSettings("Once upon", 80, 0.8, 0.9, 5, True)
    pieces = list(engine.stream(settings))
    model = zhllama_rs.Model(tiny.model, tiny.tokenizer, threads=1)
    assert "".join(pieces) == model.generate("Once upon", 80, 0.8, 0.9, 5, True)


def test_user_errors_are_zhllama_errors(tiny, tmp_path, monkeypatch) -> None:
    def create(**kw: object) -> object:
        return get_registry().create("engines", "rust", EngineConfig(**kw))  # type: ignore[arg-type]

    with pytest.raises(ZhllamaError, match="no such file"):
        create(checkpoint=tmp_path / "nope.bin", tokenizer=tiny.tokenizer)
    monkeypatch.chdir(tmp_path)  # no tokenizer.bin here: the default, like the CLI's -z
    with pytest.raises(ZhllamaError, match="pass the tokenizer with -z"):
        create(checkpoint=tiny.model)
    with pytest.raises(ZhllamaError, match="CPU"):
        create(checkpoint=tiny.model, tokenizer=tiny.tokenizer, device="cuda")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 100)
    with pytest.raises(ZhllamaError, match="bad.bin"):
        create(checkpoint=bad, tokenizer=tiny.tokenizer)
    engine = create(checkpoint=tiny.model, tokenizer=tiny.tokenizer)
    with pytest.raises(ZhllamaError):
        list(engine.stream(SampleSettings(temperature=float("nan"))))  # type: ignore[attr-defined]


def test_zhllama_sample_command(tiny, native_cli, tmp_path) -> None:
    zhllama = Path(sys.executable).parent / "zhllama"  # the workspace always installs it
    args = [str(tiny.model), "-z", str(tiny.tokenizer), "-n", "120", "-t", "0.9"]
    args += ["-s", "77", "-i", "Lily"]
    r = subprocess.run([str(zhllama), "sample", "--engine", "rust", *args], capture_output=True)
    assert r.returncode == 0, r.stderr
    want = subprocess.run([str(native_cli), *args], capture_output=True, check=True)
    assert r.stdout == want.stdout
    r = subprocess.run(
        [str(zhllama), "sample", "--engine", "rust", str(tmp_path / "x.bin")], capture_output=True
    )
    assert r.returncode == 1 and b"Traceback" not in r.stderr
