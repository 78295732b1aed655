"""zhllama_trainer: the Llama model in torch, size presets and the training loop."""

import os

# torch's OpenMP workers spin for a long while (GOMP_SPINCOUNT, 300,000 by default) after each
# parallel op before they sleep. On a CPU the Rust attention kernel (cpu_attention.py) runs on
# its own threads right after such ops, and the spinning workers took its cores: a tiny step
# ran 1.2x faster with 30,000 (tools/bench_train.py; the 15M shape, torch only, is unchanged).
# It takes effect only if torch is not loaded yet, and never overrides a user's setting.
os.environ.setdefault("GOMP_SPINCOUNT", "30000")
