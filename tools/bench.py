"""`just bench`: run every benchmark of the project in one go.

Each `tools/bench_<area>.py` takes an output JSON path, measures its area (ratios taken within
one run, never against a recorded figure, since this machine is noisy) and prints a markdown
table. This script runs them all (or the areas named), then writes `bench/results.json` (every
figure, keyed by area) and `bench/results.md` (the tables, each with its date, the machine and
the reference programs), which the README quotes; areas not run this time keep their last
figures there, stamped with their own date. The reference programs (llama2.c, llama.cpp) take
part when ZH_REF_LLAMA2C / ZH_REF_LLAMA_CPP point at them (tools/benchrefs.py, bench/README.md).

Usage: python tools/bench.py [AREA ...]   (default: every area)
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import benchrefs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"


def machine() -> str:
    avx512 = "AVX-512 yes" if benchrefs.has_avx512() else "AVX-512 no"
    cpus = f"{os.cpu_count()} logical CPUs"
    return f"{benchrefs.cpu_name()} ({avx512}), {cpus}, {platform.system()} {platform.release()}"


def references() -> dict[str, str | None]:
    """The reference folders this run uses (None: not configured); exits on a bad one."""
    try:
        l2c, lcpp = benchrefs.llama2c(), benchrefs.llama_cpp()
    except benchrefs.ReferenceError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    refs: dict[str, str | None] = {
        benchrefs.LLAMA2C_ENV: str(l2c) if l2c else None,
        benchrefs.LLAMA_CPP_ENV: str(lcpp[0]) if lcpp else None,
    }
    if not lcpp and (lib := benchrefs.llama_cpp_library()):
        # what the engine and server benchmarks compare with when no binaries are given
        refs["llama.cpp library"] = f"{lib} in the venv"
    return refs


def main(areas: list[str]) -> int:
    OUT.mkdir(exist_ok=True)
    scripts = sorted(ROOT.glob("tools/bench_*.py"))
    known = [s.stem.removeprefix("bench_") for s in scripts]
    unknown = [a for a in areas if a not in known]
    if unknown:
        print(f"error: unknown area {unknown[0]}; areas: {', '.join(known)}", file=sys.stderr)
        return 1
    if areas:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in areas]
    refs = references()
    stamp = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "references": refs,
    }
    print(header(stamp), flush=True)
    results: dict[str, dict] = {}
    failed = []
    for script in scripts:
        area = script.stem.removeprefix("bench_")
        out = OUT / f"{area}.json"
        out.unlink(missing_ok=True)
        print(f"== {area} ({script.relative_to(ROOT)})", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(script), str(out)], cwd=ROOT, capture_output=True, text=True
        )
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0 or not out.exists():
            sys.stderr.write(proc.stderr[-4000:])
            failed.append(area)
            continue
        seconds = round(time.perf_counter() - t0)
        results[area] = stamp | {
            "seconds": seconds,
            "figures": json.loads(out.read_text()),
            "table": proc.stdout.strip(),
        }
        print(f"   ({seconds} s)", flush=True)
    doc = {"areas": dict(sorted((previous_results() | results).items()))}
    (OUT / "results.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    md = ["Each area was measured in one run of `tools/bench.py` (ratios within that run).", ""]
    for area, r in doc["areas"].items():
        md += [f"### {area}", "", header(r), "", r["table"], ""]
    (OUT / "results.md").write_text("\n".join(md))
    print(f"wrote {OUT / 'results.json'} and {OUT / 'results.md'}")
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def header(stamp: dict) -> str:
    """When, where and beside what an area was measured."""
    refs = stamp["references"]
    used = [f"{k}={v}" if k.startswith("ZH_") else f"{k}: {v}" for k, v in refs.items() if v]
    unset = [k for k, v in refs.items() if not v and k.startswith("ZH_")]
    line = f"Measured {stamp['date']} on {stamp['machine']}. "
    line += f"References: {', '.join(used)}." if used else "References: none."
    if unset:
        line += f" Not configured: {', '.join(unset)}."
    return line


def previous_results() -> dict[str, dict]:
    """The areas of the last results.json that this run does not measure again keep their
    figures (each with its own date); a file in an older layout is started afresh."""
    try:
        areas = json.loads((OUT / "results.json").read_text())["areas"]
    except (OSError, ValueError, KeyError):
        return {}
    return {k: v for k, v in areas.items() if isinstance(v, dict) and "table" in v}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
