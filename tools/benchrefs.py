"""Where `just bench` finds the reference programs it compares zhllama with in the same run,
and the machine every figure names.

Nothing here is built or downloaded: the user builds llama2.c and llama.cpp by hand from their
public sources, outside this repository (bench/README.md says how), and points the benchmarks at
them with two environment variables:

- `ZH_REF_LLAMA2C=DIR`: a llama2.c checkout after `make runomp` (which builds both `run` and
  `runq` with -Ofast -fopenmp -march=native). Its `model.py` is the training baseline.
- `ZH_REF_LLAMA_CPP=DIR`: a llama.cpp build folder inside its checkout (or the build's `bin/`)
  holding `llama-bench`, `llama-batched-bench` and `llama-quantize`; the checkout's
  `convert_hf_to_gguf.py` (found above DIR) makes GGUF files of the benchmark's weights.

Without `ZH_REF_LLAMA_CPP`, llama.cpp's own C library in the venv (llama-cpp-python, `uv sync
--group llamacpp`) stands in for its binaries where the venv has it (`llama_cpp_library`).

An unset variable means "not configured": the benchmark prints our figures only and says so. A
variable that is set but points at something unusable is the user's mistake: one line naming the
folder and what is missing, exit 1 (a silent fallback would print a table without the
comparison the user asked for).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path

LLAMA2C_ENV = "ZH_REF_LLAMA2C"
LLAMA_CPP_ENV = "ZH_REF_LLAMA_CPP"
LLAMA_CPP_TOOLS = ("llama-bench", "llama-batched-bench", "llama-quantize")
LLAMA_CPP_CONVERTER = "convert_hf_to_gguf.py"


class ReferenceError(Exception):
    """A reference variable is set but does not point at a usable build."""


def _dir(env: str) -> Path | None:
    value = os.environ.get(env, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ReferenceError(f"{env}={value}: not a folder")
    return path


def llama_cpp_library() -> str | None:
    """`llama-cpp-python VERSION` when this Python has llama.cpp's library; None when not."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    return f"llama-cpp-python {importlib.metadata.version('llama-cpp-python')}"


def llama2c() -> Path | None:
    """The llama2.c checkout, with `run`, `runq` (built) and `model.py`; None when unset."""
    path = _dir(LLAMA2C_ENV)
    if path is None:
        return None
    missing = [n for n in ("run", "runq", "model.py") if not (path / n).is_file()]
    if missing:
        raise ReferenceError(
            f"{LLAMA2C_ENV}={path}: no {', '.join(missing)} there "
            "(build with `make runomp` in the llama2.c checkout)"
        )
    return path


def llama_cpp() -> tuple[Path, Path] | None:
    """llama.cpp's binaries folder (DIR or DIR/bin) and its checkout's HF-to-GGUF converter;
    None when unset."""
    path = _dir(LLAMA_CPP_ENV)
    if path is None:
        return None
    bins = next(
        (
            d
            for d in (path, path / "bin")
            if all(os.access(d / n, os.X_OK) for n in LLAMA_CPP_TOOLS)
        ),
        None,
    )
    if bins is None:
        raise ReferenceError(
            f"{LLAMA_CPP_ENV}={path}: needs the llama.cpp binaries {', '.join(LLAMA_CPP_TOOLS)} "
            "in it or in its bin/ (see bench/README.md for the cmake targets)"
        )
    up = [path, *path.resolve().parents][:4]
    converter = next(
        (d / LLAMA_CPP_CONVERTER for d in up if (d / LLAMA_CPP_CONVERTER).is_file()), None
    )
    if converter is None:
        raise ReferenceError(
            f"{LLAMA_CPP_ENV}={path}: no {LLAMA_CPP_CONVERTER} in it or the folders above it "
            "(point it at a build folder inside the llama.cpp checkout)"
        )
    return bins, converter


def not_configured(*envs: str) -> str | None:
    """The line that says which references this run compares without, or None."""
    unset = [e for e in envs if not os.environ.get(e, "").strip()]
    if not unset:
        return None
    return (
        f"not configured: {', '.join(unset)} (our figures only; bench/README.md says how to "
        "build the reference programs and point the benchmark at them)"
    )


def _cpuinfo(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_name() -> str:
    """`lscpu`'s model name (from /proc/cpuinfo), or what platform knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    return set(_cpuinfo("flags").split())


def l3_bytes() -> int:
    """The size of the biggest cache (L3 where there is one), 0 when unknown (Linux sysfs)."""
    sizes = []
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = f.read_text().strip()
        unit = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
        try:
            sizes.append(int(text.rstrip("KM")) * unit)
        except ValueError:
            continue
    return max(sizes, default=0)


def has_avx512() -> bool:
    return "avx512f" in cpu_flags()
