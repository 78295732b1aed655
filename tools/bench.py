"""`just bench`: run every benchmark of the project in one go.

Each `tools/bench_<area>.py` takes an output JSON path, measures its area (ratios taken within
one run, never against a recorded figure, since this machine is noisy) and prints a markdown
table. This script runs them all, then writes `bench/results.json` (every figure, keyed by area)
and `bench/results.md` (the tables, with the date, the machine and the reference programs),
which the README quotes. The reference programs (llama2.c, llama.cpp) take part when
ZH_REF_LLAMA2C / ZH_REF_LLAMA_CPP point at them (tools/benchrefs.py, bench/README.md).

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
    return {
        benchrefs.LLAMA2C_ENV: str(l2c) if l2c else None,
        benchrefs.LLAMA_CPP_ENV: str(lcpp) if lcpp else None,
    }


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
    results: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "references": refs,
        "areas": {},
    }
    used = [f"{k}={v}" for k, v in refs.items() if v]
    unset = [k for k, v in refs.items() if not v]
    md = [f"Measured {results['date']} on {results['machine']}."]
    md += [f"References: {', '.join(used)}." if used else "References: none."]
    if unset:
        md += [f"Not configured: {', '.join(unset)} (our figures only there)."]
    md += [""]
    print("\n".join(md), flush=True)
    failed = []
    for script in scripts:
        area = script.stem.removeprefix("bench_")
        out = OUT / f"{area}.json"
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
        results["areas"][area] = json.loads(out.read_text())  # type: ignore[index]
        md += [f"### {area}", "", proc.stdout.strip(), ""]
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (OUT / "results.md").write_text("\n".join(md) + "\n")
    print(f"wrote {OUT / 'results.json'} and {OUT / 'results.md'}")
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
