"""The `zhllama` shell: plugins table, error handling (one line, exit 1, no traceback), and
package commands, in-process and through the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from zhllama.cli import main

ZHLLAMA = str(Path(sys.executable).with_name("zhllama"))


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ZHLLAMA, *args], capture_output=True, text=True, timeout=120, env=env or dict(os.environ)
    )


def test_plugins_lists_the_outside_plugin_and_the_broken_one(plugin_site, capsys):
    assert main(["plugins"]) == 0
    out, err = capsys.readouterr()
    assert "outside" in out and "a source from an outside package" in out
    assert "plugin exporters/broken (broken_zh_plugin:exporter) failed to load" in err
    assert "RuntimeError: boom" in err


def test_user_error_is_one_line_and_exit_1(tmp_path, capsys):
    assert main(["sample", "missing.bin"]) == 1
    out, err = capsys.readouterr()
    assert err == "error: missing.bin: no such checkpoint\n"
    assert out == ""


def test_usage_errors_exit_2_without_traceback(capsys):
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err
    assert main(["sample", "m.bin", "--steps", "many"]) == 2
    assert "Invalid value" in capsys.readouterr().err


def test_the_shell_runs_without_the_click_package():
    """typer 0.29 vendors click and no longer depends on it, so a fresh install may lack it: the
    shell must not import it (here it is made unimportable in a fresh interpreter)."""
    code = (
        "import sys\n"
        "class NoClick:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'click' or name.startswith('click.'):\n"
        "            raise ImportError('no click here')\n"
        "sys.meta_path.insert(0, NoClick())\n"
        "from zhllama.cli import main\n"
        "sys.exit(main(['no-such-command']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "No such command" in done.stderr and "Traceback" not in done.stderr


def test_long_errors_are_not_wrapped(capsys):
    path = "a-very-long-folder-name/" * 6 + "model.bin"
    assert main(["sample", path]) == 1
    assert capsys.readouterr().err == f"error: {path}: no such checkpoint\n"


def test_help(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "plugins" in out and "Example" in out


def test_console_script_error_has_no_traceback():
    proc = run_script("sample", "/nonexistent/model.bin")
    assert proc.returncode == 1
    assert proc.stderr == "error: /nonexistent/model.bin: no such checkpoint\n"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_console_script_with_an_outside_package(plugin_files):
    path = os.pathsep.join(filter(None, [str(plugin_files), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = run_script("plugins", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "outside" in proc.stdout
    assert "exporters/broken" in proc.stderr and "RuntimeError: boom" in proc.stderr
    assert "commands broken-cmd (broken_zh_plugin:app) failed to load" in proc.stderr
    proc = run_script("outside-hello", "--name", "小明", env=env)
    assert proc.returncode == 0
    assert proc.stdout == "hello 小明\n"


def test_version_names_every_package_and_imports_nothing_heavy():
    from importlib.metadata import version

    code = (
        "import sys; from zhllama.cli import main; rc = main(['--version']); "
        "assert 'torch' not in sys.modules; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"zhllama {version('zhllama')}" in lines
    assert f"zhllama-trainer {version('zhllama-trainer')}" in lines
    assert f"torch {version('torch')}" in lines
    assert run_script("-V").stdout == proc.stdout


def test_help_screens_read_plainly(capsys):
    # issue 16 (9): usage showed `{CHECKPOINT}` and flags `<bool>`; `data` lists pretokenize
    for argv in (["export", "--help"], ["eval", "--help"], ["sample", "--help"], ["--help"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "<bool>" not in out and "{" not in out, (argv, out)
    assert main(["data", "--help"]) == 0
    assert "pretokenize" in capsys.readouterr().out
    assert main(["data", "sample", "synthetic", "colour=red"]) == 1
    err = capsys.readouterr().err
    assert "unknown setting colour; known settings: num_stories, seed" in err
    assert "Config" not in err
