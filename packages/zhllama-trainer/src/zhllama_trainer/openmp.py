"""OpenMP tuning for CPU training, applied when a training command starts (never on import).

torch's OpenMP workers spin for a long while (GOMP_SPINCOUNT, 300,000 by default) after each
parallel op before they sleep. On a CPU the Rust attention kernel (cpu_attention.py) runs on its
own threads right after such ops, and the spinning workers took its cores: a tiny step ran 1.2x
faster with 30,000 (tools/bench_train.py; the 15M shape, torch only, is unchanged).

libgomp reads the variable once, when torch loads it, so this must run before `import torch`;
the `zhllama train` command and tools/bench_train.py call it first thing. It never overrides a
user's setting, and a library user who imports torch first keeps torch's default.
"""

from __future__ import annotations

import os

SPINCOUNT = "30000"


def tune_for_cpu_training() -> None:
    os.environ.setdefault("GOMP_SPINCOUNT", SPINCOUNT)
