"""Atomic writes: whole files or nothing, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest
from zhllama.atomic import atomic_dir, atomic_open, atomic_write_json, atomic_write_text


def test_write_replaces_whole_file_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    target = tmp_path / "export"
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("v1")
    with pytest.raises(ValueError), atomic_dir(target) as d:
        (d / "a.txt").write_text("v2")
        raise ValueError("bad model")
    assert (target / "a.txt").read_text() == "v1"
    with atomic_dir(target) as d:
        (d / "b.txt").write_text("v3")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
