#!/usr/bin/env python3
"""Benchmark the Rust engine beside llama2.c and llama.cpp, in one run, on the same weights.

    python tools/bench_engine.py bench/engine.json [--repeats 3] [--shapes 15M,42M,110M]
        [--threads 1,2] [--prompts 64,256] [--batched 1,2,4,8,16]

Random-weight models with the Chinese models' shapes (15M, 42M, 110M), f32 and int8 (version 2,
FORMATS.md §1.3; the same weights quantized), and tok5000 (../shared/reference, else a random
tokenizer of that size). Measured, each at 1 and 2 threads:

- decode: `-t 0 -n 200` from an empty prompt, tokens/s. zhllama-rs; llama2.c's `run` (f32) and
  `runq` (int8) with OMP_NUM_THREADS when `ZH_REF_LLAMA2C` is set; llama.cpp's
  `llama-bench -p 0 -n 200` on the same weights as GGUF (f32, and q8_0 for int8) when
  `ZH_REF_LLAMA_CPP` is set. Also our effective bandwidth (tokens/s × weight bytes) against the
  machine's read bandwidth measured in the same run by ../shared/tools/membw.c ("cache" for
  weights under twice the L3 size, which are read largely from the cache).
- prefill: the time to read a prompt of 64 and of 256 tokens, tokens/s (`-i PROMPT -n N`: all
  N positions are prompt). llama2.c feeds it one token at a time and reports N-1 positions over
  the time after the first (run.c's clock); zhllama-rs reads it in one batched pass and reports
  N-1 positions over the time of that pass (its clock starts before it); llama.cpp's
  `llama-bench -p N -n 0` reads it as one batch.
- aggregate decode: S = 1, 2, 4, 8, 16 stories at once, each a 16-token prompt and 64
  generated tokens; generated tokens/s over all of them. zhllama-rs: `--batch-file` with S
  prompts, `--parallel S -n 80` (its clock includes the prompts' prefill, so it is a little
  low); llama.cpp: `llama-batched-bench -npp 16 -ntg 64 -npl 1,2,4,8,16` (one run; text
  generation only), or the library reference below.

Without `ZH_REF_LLAMA_CPP`, llama.cpp's own library in the venv (llama-cpp-python, `uv sync
--group llamacpp`) is the llama.cpp reference, timed by tools/llamacpp_py.py through its C API:
prefill = one `llama_decode` of N prompt tokens, decode = one `llama_decode` per step with one
token per sequence, greedy, prompts' time left out (what llama-bench / llama-batched-bench
time). Its weights: our own GGUF export of the same checkpoint (f32, and q8_0 for int8), since
that build has no converter. bench/README.md says what that library build is.

The llama.cpp files hold the same weights: the f32 .bin goes through `zhllama export --format hf`
(tested against transformers) and llama.cpp's own `convert_hf_to_gguf.py` from the user's
checkout (f32), then `llama-quantize … q8_0`, into target/bench/ (cached). This needs the
sentencepiece `tok5000.model` beside tok5000.bin (llama.cpp wants the vocabulary with its
types; llama.cpp's llama2.c converter cannot read tok5000.bin: duplicate pieces, llama.cpp
asserts at load); without it the llama.cpp columns are left out with a note. zhllama's coming
GGUF exporter is not used: the comparison should not rest on the exporter under test.

Ratios (ours / theirs) are taken within this run only; nothing is compared with a recorded
figure. Each figure is the best of --repeats runs (other load on this shared machine only ever
slows a run down), and the runs go round robin over every program, shape, weight type, thread
count and test, so that a burst of load hits all alike. Writes JSON to the path given first and
prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import benchrefs

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "target"
BENCH = TARGET / "bench"
MEMBW_C = ROOT.parent / "shared" / "tools" / "membw.c"
TOK5000 = ROOT.parent / "shared" / "reference" / "zh" / "tok5000.bin"
GEN = ROOT / "tools" / "gen_random_checkpoint.py"
LLAMA_LIB = ROOT / "tools" / "llamacpp_py.py"
ZHLLAMA = Path(sys.executable).parent / "zhllama"
LlamaCpp = tuple[Path, Path]  # llama.cpp's binaries folder, its convert_hf_to_gguf.py
SHAPES = {
    "15M": (288, 768, 6, 6, 6, 5000, 256),
    "42M": (512, 1376, 8, 8, 8, 5000, 1024),
    "110M": (768, 2048, 12, 12, 12, 5000, 1024),
}
DTYPES = ("f32", "int8")
DECODE_STEPS = 200
# A Chinese sentence repeated into prompts of any length (the weights are random: any text
# does; what matters is the number of tokens).
PROMPT_TEXT = "从前，有一个小女孩叫莉莉。她每天都和她的小狗在花园里玩，太阳照得大家暖洋洋的。"
BATCHED_PROMPT, BATCHED_GEN = 16, 64


def group_size(shape: tuple[int, ...]) -> int:
    """The default int8 group size: the largest of 64, 32, ... dividing dim and hidden."""
    d, h = shape[0], shape[1]
    gs = 64
    while gs > 1 and (d % gs or h % gs):
        gs //= 2
    return gs


def weight_bytes(shape: tuple[int, ...], int8: bool = False) -> int:
    d, h, n_layers, n_heads, n_kv, vocab, _ = shape
    kvd = n_kv * (d // n_heads)
    norms = 4 * (2 * n_layers * d + d)
    matrices = n_layers * (2 * d * d + 2 * kvd * d + 3 * h * d) + vocab * d + d
    if int8:
        return norms + matrices + 4 * matrices // group_size(shape)
    return norms + 4 * matrices


def v0_file_size(shape: tuple[int, ...]) -> int:
    """Exact size of a version-0 checkpoint with a shared classifier (FORMATS.md §1.1)."""
    d, h, n_layers, n_heads, n_kv, vocab, seq = shape
    hs = d // n_heads
    kvd = n_kv * hs
    floats = vocab * d + n_layers * (2 * d + 2 * d * d + 2 * kvd * d + 3 * h * d) + d + seq * hs
    return 28 + 4 * floats


def v2_file_size(shape: tuple[int, ...]) -> int:
    """Exact size of a version-2 (int8) checkpoint with a shared classifier (FORMATS.md §1.3)."""
    d, h, n_layers, n_heads, n_kv, vocab, _ = shape
    kvd = n_kv * (d // n_heads)
    n = vocab * d + n_layers * (2 * d * d + 2 * kvd * d + 3 * h * d)
    return 256 + 4 * (2 * n_layers * d + d) + n + 4 * (n // group_size(shape))


# ---- what is run: the models, our engine, the reference programs ----


def build_engine() -> Path:
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "zhllama-cli"], cwd=ROOT, check=True)
    return TARGET / "release" / "zhllama-rs"


def ensure_model(name: str, int8: bool) -> Path:
    """The random checkpoint (cached); int8 ones hold the same weights quantized."""
    BENCH.mkdir(parents=True, exist_ok=True)
    path = BENCH / (f"{name}-q8.bin" if int8 else f"{name}.bin")
    size = v2_file_size(SHAPES[name]) if int8 else v0_file_size(SHAPES[name])
    if not path.exists() or path.stat().st_size != size:
        version = ["--version", "2"] if int8 else []
        cmd = [sys.executable, str(GEN), "--shape", name, *version, "-o", str(path)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def ensure_tokenizer() -> Path:
    if TOK5000.exists():
        return TOK5000
    path = BENCH / "tok5000-random.bin"
    if not path.exists():
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, str(GEN), "--shape", "15M", "-o", str(Path(tmp) / "x.bin")]
            cmd += ["--tokenizer-out", str(path)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def ensure_gguf(lcpp: LlamaCpp, name: str, int8: bool, spm: Path) -> Path:
    """The same weights for llama.cpp: f32 via our HF export and llama.cpp's converter, q8_0
    from that by llama-quantize."""
    bins, converter = lcpp
    f32 = BENCH / f"{name}.f32.gguf"
    src = ensure_model(name, int8=False)
    if not f32.exists() or f32.stat().st_mtime < src.stat().st_mtime:
        with tempfile.TemporaryDirectory(dir=BENCH) as tmp:
            hf = Path(tmp) / "hf"
            cmd = [str(ZHLLAMA), "export", str(src), str(hf), "--format", "hf"]
            _quiet(cmd + ["--tokenizer", str(spm)])
            out = Path(tmp) / "out.gguf"
            cmd = [sys.executable, str(converter), str(hf), "--outtype", "f32"]
            _quiet(cmd + ["--outfile", str(out)])
            os.replace(out, f32)
    if not int8:
        return f32
    q8 = BENCH / f"{name}.q8_0.gguf"
    if not q8.exists() or q8.stat().st_mtime < f32.stat().st_mtime:
        tmp = q8.with_name(q8.name + ".tmp")
        _quiet([str(bins / "llama-quantize"), str(f32), str(tmp), "q8_0"])
        os.replace(tmp, q8)
    return q8


def lib_gguf(name: str, int8: bool, spm: Path) -> Path:
    """The same weights for the llama.cpp library reference, by our GGUF exporter (f32, or
    q8_0 from the same f32 weights), into target/bench/ (cached)."""
    dtype = "q8_0" if int8 else "f32"
    out = BENCH / f"{name}.ours.{dtype}.gguf"
    src = ensure_model(name, int8=False)
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        tmp = out.with_name(out.name + ".tmp.gguf")
        _quiet([str(ZHLLAMA), "export", str(src), "-o", str(tmp), "--dtype", dtype, "-z", str(spm)])
        os.replace(tmp, out)
    return out


def _quiet(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run cmd; on failure raise with the end of its output (the reference tools are chatty)."""
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout)[-1500:]
        raise RuntimeError(f"{Path(cmd[0]).name} failed (exit {r.returncode}):\n{tail}")
    return r


def prompt_of(engine: Path, tok: Path, n: int) -> str:
    """A prompt that our tokenizer reads as at least n + 16 tokens (so -n n is all prompt)."""
    text = PROMPT_TEXT
    while True:
        cmd = [str(engine), "--tokenize", "-i", text, "-z", str(tok)]
        if len(_quiet(cmd).stdout.split()) >= n + 16:
            return text
        text += PROMPT_TEXT


def achieved(stderr: str) -> float:
    """The `achieved tok/s` line both zhllama-rs and llama2.c print."""
    m = re.search(r"achieved tok/s: ([\d.]+)", stderr)
    if not m:
        raise RuntimeError(f"no tok/s in: {stderr[-500:]!r}")
    return float(m.group(1))


def batch_file(engine: Path, tok: Path, seqs: int) -> Path:
    """seqs prompts of BATCHED_PROMPT tokens each (counting BOS), one a line (cached)."""
    path = BENCH / f"batch{seqs}.txt"
    if not path.exists():
        BENCH.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no target/bench yet
        lines = []
        for i in range(seqs):
            text = PROMPT_TEXT[i % len(PROMPT_TEXT) :] + PROMPT_TEXT
            k = 1
            while True:
                cmd = [str(engine), "--tokenize", "-i", text[:k], "-z", str(tok)]
                if len(_quiet(cmd).stdout.split()) >= BATCHED_PROMPT:
                    break
                k += 1
            lines.append(text[:k])
        path.write_text("".join(line + "\n" for line in lines))
    return path


def ours_batched(engine: Path, model: Path, tok: Path, threads: int, prompts: Path) -> float:
    """Every story of the file at once: generated tokens/s over all of them."""
    seqs = len(prompts.read_text().splitlines())
    cmd = [str(engine), str(model), "-z", str(tok), "-t", "0", "--no-eos-stop"]
    cmd += ["-n", str(BATCHED_PROMPT + BATCHED_GEN), "--threads", str(threads)]
    cmd += ["--batch-file", str(prompts), "--parallel", str(seqs)]
    return achieved(_quiet(cmd).stderr)


def llama_lib(gguf: Path, threads: int, args: list[str]) -> float:
    """One figure from tools/llamacpp_py.py (llama.cpp's library, through its C API)."""
    cmd = [sys.executable, str(LLAMA_LIB), *args, str(gguf), "--threads", str(threads)]
    row = json.loads(_quiet(cmd).stdout.strip().splitlines()[-1])
    LLAMA_CPP_BUILD["system_info"] = row["system_info"].strip()
    return float(row["tok_per_s"])


def ours(engine: Path, model: Path, tok: Path, threads: int, n: int, prompt: str = "") -> float:
    cmd = [str(engine), str(model), "-z", str(tok), "-t", "0", "-n", str(n)]
    cmd += ["--threads", str(threads), "--no-eos-stop"] + (["-i", prompt] if prompt else [])
    return achieved(_quiet(cmd).stderr)


def llama2c(exe: Path, model: Path, tok: Path, threads: int, n: int, prompt: str = "") -> float:
    """run/runq as llama2.c documents them: OMP_NUM_THREADS sets the threads. (run.c stops
    early if it samples BOS; its figure is then over fewer tokens, still tokens per second.)"""
    cmd = [str(exe), str(model), "-z", str(tok), "-t", "0", "-n", str(n)]
    cmd += ["-i", prompt] if prompt else []
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    return achieved(_quiet(cmd, env).stderr)


LLAMA_CPP_BUILD: dict[str, object] = {}  # what llama-bench says about its build, for the JSON


def llama_bench(bins: Path, gguf: Path, threads: int, n_prompt: int, n_gen: int) -> float:
    cmd = [str(bins / "llama-bench"), "-m", str(gguf), "-t", str(threads), "-r", "1"]
    cmd += ["-p", str(n_prompt), "-n", str(n_gen), "-o", "json"]
    row = json.loads(_quiet(cmd).stdout)[0]
    LLAMA_CPP_BUILD.update(
        {k: row[k] for k in ("build_commit", "build_number", "cpu_info") if k in row}
    )
    return float(row["avg_ts"])


def batched_bench(bins: Path, gguf: Path, threads: int, npl: list[int]) -> dict[int, float]:
    ctx = max(npl) * (BATCHED_PROMPT + BATCHED_GEN)
    cmd = [str(bins / "llama-batched-bench"), "-m", str(gguf), "-t", str(threads)]
    cmd += ["-c", str(ctx), "-b", "2048", "-ub", "512", "-npp", str(BATCHED_PROMPT)]
    cmd += ["-ntg", str(BATCHED_GEN), "-npl", ",".join(map(str, npl))]
    cmd += ["--output-format", "jsonl"]
    r = _quiet(cmd)
    out = {}
    for line in (r.stdout + "\n" + r.stderr).splitlines():
        if line.startswith("{") and '"speed_tg"' in line:
            row = json.loads(line)
            out[int(row["pl"])] = float(row["speed_tg"])
    if sorted(out) != sorted(npl):
        raise RuntimeError(f"llama-batched-bench gave sequences {sorted(out)}, wanted {npl}")
    return out


def membw() -> dict[str, float]:
    if not MEMBW_C.exists() or shutil.which("gcc") is None:
        print(f"note: {MEMBW_C} or gcc missing: no bandwidth figure", file=sys.stderr)
        return {}
    exe = TARGET / "membw"
    subprocess.run(["gcc", "-O2", "-fopenmp", "-o", str(exe), str(MEMBW_C)], check=True)
    out = subprocess.run(
        [str(exe), "512", "1,2"], capture_output=True, text=True, check=True
    ).stdout
    return {m[0]: float(m[1]) for m in re.findall(r"threads (\d+): ([\d.]+) GB/s", out)}


# ---- the run ----

Key = tuple[str, str, str, int, str]  # (test, shape, dtype, threads, program)


def plan(
    a: argparse.Namespace,
    engine: Path,
    tok: Path,
    l2c: Path | None,
    lcpp: LlamaCpp | None,
    lib: bool,
):
    """Every timed run of one round, as (key, thunk), in round-robin order. `lib`: llama.cpp's
    library is the llama.cpp reference (no binaries given)."""
    prompts = {n: prompt_of(engine, tok, n) for n in a.prompts}
    batches = {s: batch_file(engine, tok, s) for s in a.batched}
    runs: list[tuple[Key, Callable[[], float]]] = []
    for name in a.shapes:
        seq = SHAPES[name][6]
        for dtype in DTYPES:
            int8 = dtype == "int8"
            model = ensure_model(name, int8)
            exe = (l2c / ("runq" if int8 else "run")) if l2c else None
            gguf = ensure_gguf(lcpp, name, int8, tok.with_suffix(".model")) if lcpp else None
            lgguf = lib_gguf(name, int8, tok.with_suffix(".model")) if lib else None
            for t in a.threads:
                tests = [("decode", DECODE_STEPS, "")]
                tests += [(f"prefill {n}", n, prompts[n]) for n in a.prompts if n <= seq]
                for test, n, p in tests:
                    key = (test, name, dtype, t)
                    runs.append(((*key, "zhllama-rs"), partial(ours, engine, model, tok, t, n, p)))
                    if exe is not None:
                        fn = partial(llama2c, exe, model, tok, t, n, p)
                        runs.append(((*key, "llama2.c"), fn))
                    if lcpp is not None and gguf is not None:
                        pp, tg = (0, n) if test == "decode" else (n, 0)
                        runs.append(
                            ((*key, "llama.cpp"), partial(llama_bench, lcpp[0], gguf, t, pp, tg))
                        )
                    if lgguf is not None:
                        args = ["decode", "--prompt", "1", "--gen", str(n)]
                        args = args if test == "decode" else ["prefill", "-n", str(n)]
                        runs.append(((*key, "llama.cpp"), partial(llama_lib, lgguf, t, args)))
                for seqs in a.batched:
                    key = (f"aggregate {seqs}", name, dtype, t)
                    fn = partial(ours_batched, engine, model, tok, t, batches[seqs])
                    runs.append(((*key, "zhllama-rs"), fn))
                    if lgguf is not None:
                        args = ["decode", "--seqs", str(seqs), "--prompt", str(BATCHED_PROMPT)]
                        args += ["--gen", str(BATCHED_GEN)]
                        runs.append(((*key, "llama.cpp"), partial(llama_lib, lgguf, t, args)))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="benchmark zhllama-rs beside llama2.c and llama.cpp")
    ap.add_argument("out", type=Path, help="where to write the JSON figures")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", default="15M,42M,110M")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompts", default="64,256", help="prefill prompt lengths, tokens")
    ap.add_argument("--batched", default="1,2,4,8,16", help="aggregate decode: sequences at once")
    a = ap.parse_args(argv)
    a.shapes = [s for s in a.shapes.split(",") if s]
    a.threads = [int(t) for t in a.threads.split(",") if t]
    a.prompts = [int(n) for n in a.prompts.split(",") if n]
    a.batched = [int(n) for n in a.batched.split(",") if n]
    unknown = [s for s in a.shapes if s not in SHAPES]
    if unknown:
        print(f"error: unknown shape {unknown[0]}; known: {', '.join(SHAPES)}", file=sys.stderr)
        return 1
    try:
        l2c = benchrefs.llama2c()
        lcpp = benchrefs.llama_cpp()
    except benchrefs.ReferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    skipped = None
    lib = lcpp is None and benchrefs.llama_cpp_library() is not None
    if (lcpp is not None or lib) and not ensure_tokenizer().with_suffix(".model").exists():
        spm = TOK5000.with_suffix(".model")
        skipped = f"llama.cpp left out: no sentencepiece {spm} to give it the vocabulary"
        print(f"note: {skipped}", file=sys.stderr)
        lcpp, lib = None, False

    engine = build_engine()
    tok = ensure_tokenizer()
    bw = membw()
    runs = plan(a, engine, tok, l2c, lcpp, lib)
    for key, fn in runs:  # warm the page cache (and check every command works) once
        if key[0] == "decode" and key[3] == a.threads[0]:
            fn()
    # Round robin: every repeat runs everything once, so that a burst of load from elsewhere on
    # this shared machine costs one run of each, not every run of one.
    figures: dict[Key, list[float]] = {}
    for _ in range(a.repeats):
        for key, fn in runs:
            figures.setdefault(key, []).append(fn())
    batched: dict[tuple[str, str, int], dict[int, float]] = {}
    if lcpp is not None and a.batched:
        for name in a.shapes:
            for dtype in DTYPES:
                gguf = ensure_gguf(lcpp, name, dtype == "int8", tok.with_suffix(".model"))
                for t in a.threads:
                    batched[(name, dtype, t)] = batched_bench(lcpp[0], gguf, t, a.batched)
    # Bandwidth again after the runs: on a shared machine the figure moves; keep the best of
    # both (membw itself keeps its best pass), the same rule as every other figure here.
    for k, v in membw().items():
        bw[k] = max(bw.get(k, 0.0), v)
    load = os.getloadavg()[0]

    rows = rows_of(figures, bw)
    doc = {
        "engine": "zhllama-rs (release, portable x86-64 build, runtime AVX2/FMA and "
        "AVX-512 VNNI dispatch)",
        "decode_args": f"-t 0 -n {DECODE_STEPS}",
        "machine": {
            "cpu": benchrefs.cpu_name(),
            "avx512": benchrefs.has_avx512(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        "cpu_flags": sorted(benchrefs.cpu_flags() & SIMD_FLAGS),
        "references": {
            "llama2c": str(l2c) if l2c else None,
            "llama_cpp": str(lcpp[0]) if lcpp else None,
            "llama_cpp_library": lib_version() if lib else None,
        },
        "llama_cpp_build": LLAMA_CPP_BUILD,
        "llama_cpp_left_out": skipped,
        "tokenizer": str(tok),
        "membw_gb_s": bw,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_1min_before": load_before,
        "load_average_1min": load,
        "repeats": a.repeats,
        "results": rows,
        "batched_decode_llama_cpp": [
            {"shape": n, "dtype": d, "threads": t, "prompt": BATCHED_PROMPT}
            | {"generated": BATCHED_GEN, "tok_per_s": {str(k): round(v, 1) for k, v in s.items()}}
            for (n, d, t), s in batched.items()
        ],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, a.out)
    print_tables(doc, a)
    return 0


def lib_version() -> str:
    return (
        f"{benchrefs.llama_cpp_library()} (llama.cpp's C library built in this venv), "
        f"timed by {LLAMA_LIB.relative_to(ROOT)}; weights: our "
        "GGUF export (f32, q8_0)"
    )


# weights under twice this size are largely read from the cache
L3_BYTES = benchrefs.l3_bytes()

SIMD_FLAGS = {
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
}


def rows_of(figures: dict[Key, list[float]], bw: dict[str, float]) -> list[dict]:
    """One row per (test, shape, dtype, threads): each program's best, ours / theirs."""
    groups: dict[tuple[str, str, str, int], dict[str, list[float]]] = {}
    for (test, name, dtype, t, prog), runs in figures.items():
        groups.setdefault((test, name, dtype, t), {})[prog] = runs
    rows = []
    for (test, name, dtype, t), progs in groups.items():
        best = {p: max(r) for p, r in progs.items()}
        row: dict = {"test": test, "shape": name, "dtype": dtype, "threads": t}
        row["tok_per_s"] = {p: round(v, 1) for p, v in best.items()}
        row["runs"] = {p: [round(x, 1) for x in r] for p, r in progs.items()}
        for ref in ("llama2.c", "llama.cpp"):
            if ref in best:
                row[f"vs_{ref}"] = round(best["zhllama-rs"] / best[ref], 3)
        if test.startswith("aggregate"):
            single = groups.get(("decode", name, dtype, t), {}).get("zhllama-rs")
            if single:
                row["vs_single_stream"] = round(best["zhllama-rs"] / max(single), 2)
        if test == "decode":
            f32 = groups.get(("decode", name, "f32", t), {}).get("zhllama-rs")
            if dtype == "int8" and f32:
                row["int8_vs_f32"] = round(best["zhllama-rs"] / max(f32), 2)
                row["group_size"] = group_size(SHAPES[name])
            wb = weight_bytes(SHAPES[name], dtype == "int8")
            row["weight_bytes"] = wb
            row["effective_gb_s"] = round(best["zhllama-rs"] * wb / 1e9, 2)
            if wb < 2 * L3_BYTES:
                # much of it is read from the cache, not memory: a share of the memory's
                # bandwidth would be over 100% and mean nothing
                row["in_cache"] = True
            elif str(t) in bw:
                row["fraction_of_membw"] = round(row["effective_gb_s"] / bw[str(t)], 3)
        rows.append(row)
    return rows


def _ratio(row: dict, ref: str) -> str:
    return f"{row[f'vs_{ref}']:.2f}×" if f"vs_{ref}" in row else "n/a"


def _tps(row: dict, prog: str) -> str:
    v = row["tok_per_s"].get(prog)
    return f"{v:,.0f}" if v is not None else "n/a"


def print_tables(doc: dict, a: argparse.Namespace) -> None:
    rows = doc["results"]
    m = doc["machine"]
    lib = doc["references"]["llama_cpp_library"]
    print(
        f"{m['cpu']}, AVX-512 {'yes' if m['avx512'] else 'no'}, {m['cores']} logical CPUs; best "
        f"of {a.repeats} round-robin runs; load average {doc['load_average_1min_before']:.1f} "
        f"before, {doc['load_average_1min']:.1f} after. llama2.c: run (f32) / runq (int8); "
        "llama.cpp: f32 / q8_0 GGUF of the same weights"
        + (f", through its library: {lib}." if lib else ".")
    )
    print("\n**decode**, `-t 0 -n 200`, tokens/s\n")
    print(
        "| model | weights | threads | zhllama-rs | llama2.c | llama.cpp | vs llama2.c "
        "| vs llama.cpp | int8 / f32 | of membw |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["test"] != "decode":
            continue
        frac = f"{100 * r['fraction_of_membw']:.0f}%" if "fraction_of_membw" in r else "n/a"
        frac = "cache" if r.get("in_cache") else frac
        sp = f"{r['int8_vs_f32']:.2f}×" if "int8_vs_f32" in r else ""
        cells = [r["shape"], r["dtype"], str(r["threads"])]
        cells += [_tps(r, p) for p in ("zhllama-rs", "llama2.c", "llama.cpp")]
        cells += [_ratio(r, "llama2.c"), _ratio(r, "llama.cpp"), sp, frac]
        print("| " + " | ".join(cells) + " |")
    print(
        "\n**prefill** (prompt tokens/s; zhllama-rs in one batched pass, llama2.c one token "
        "at a time)\n"
    )
    print(
        "| model | weights | threads | prompt | zhllama-rs | llama2.c | llama.cpp "
        "| vs llama2.c | vs llama.cpp |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if not r["test"].startswith("prefill"):
            continue
        cells = [r["shape"], r["dtype"], str(r["threads"]), r["test"].split()[1]]
        cells += [_tps(r, p) for p in ("zhllama-rs", "llama2.c", "llama.cpp")]
        cells += [_ratio(r, "llama2.c"), _ratio(r, "llama.cpp")]
        print("| " + " | ".join(cells) + " |")
    agg = [r for r in rows if r["test"].startswith("aggregate")]
    if agg:
        print(
            f"\n**aggregate decode** (S stories at once, {BATCHED_PROMPT}-token prompts, "
            f"{BATCHED_GEN} generated each): generated tokens/s over all; × single = ours over "
            "our single-stream decode\n"
        )
        print(
            "| model | weights | threads | S | zhllama-rs | llama.cpp | vs llama.cpp | × single |"
        )
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for r in agg:
            x = f"{r['vs_single_stream']:.2f}×" if "vs_single_stream" in r else "n/a"
            cells = [r["shape"], r["dtype"], str(r["threads"]), r["test"].split()[1]]
            cells += [_tps(r, p) for p in ("zhllama-rs", "llama.cpp")]
            cells += [_ratio(r, "llama.cpp"), x]
            print("| " + " | ".join(cells) + " |")
    if doc["batched_decode_llama_cpp"]:
        npl = a.batched
        print(
            f"\n**aggregate decode**, llama.cpp only (`llama-batched-bench -npp {BATCHED_PROMPT} "
            f"-ntg {BATCHED_GEN}`, one run): generated tokens/s over all sequences\n"
        )
        print("| model | weights | threads | " + " | ".join(f"{n} seq" for n in npl) + " |")
        print("|---|---|---|" + "---:|" * len(npl))
        for b in doc["batched_decode_llama_cpp"]:
            cells = [b["shape"], b["dtype"], str(b["threads"])]
            cells += [f"{b['tok_per_s'][str(n)]:,.0f}" for n in npl]
            print("| " + " | ".join(cells) + " |")
    note = benchrefs.not_configured(benchrefs.LLAMA2C_ENV, benchrefs.LLAMA_CPP_ENV)
    for line in (note, doc["llama_cpp_left_out"]):
        if line:
            print(f"\n{line}")


if __name__ == "__main__":
    raise SystemExit(main())
