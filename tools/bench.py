"""`just bench`: run every benchmark of the project in one go.

Each `tools/bench_<area>.py` takes an output JSON path, measures its area (ratios taken within
one run, since this machine is noisy) and prints a markdown table. This script runs them all,
then writes `bench/results.json` (every figure, keyed by area) and `bench/results.md` (the
tables, with the date and the machine), which the README quotes.

Usage: python tools/bench.py [AREA ...]   (default: every area)
"""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def main(areas: list[str]) -> int:
    OUT.mkdir(exist_ok=True)
    scripts = sorted(ROOT.glob("tools/bench_*.py"))
    if areas:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in areas]
    results: dict[str, object] = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "areas": {},
    }
    md = [f"Measured {results['date']} on {results['machine']}.", ""]
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
