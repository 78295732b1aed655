"""The Python example in crates/zhllama-py/README.md runs as written."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(gen, h, tmp_path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "no python example in the README"
    # The file names the example uses, as random stand-ins with the real models' vocab size.
    files = h.write_model(gen, tmp_path, shape=(64, 172, 2, 8, 4, 5000, 256))
    files.model.rename(tmp_path / "stories15M.bin")
    files.tokenizer.rename(tmp_path / "tok5000.bin")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], str(README), "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    assert lines[0] == "64 2 5000 256 0"
    assert lines[1].startswith("从前") and lines[2].startswith("从前")
    assert lines[-1].startswith("从前")
