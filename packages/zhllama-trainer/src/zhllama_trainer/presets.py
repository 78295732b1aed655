"""Model and training size presets: data, not code (litgpt style).

Each preset is a dict of TrainConfig settings; anything not listed keeps TrainConfig's default
(the data's vocabulary, lr 5e-4 with 1000 warmup iterations and cosine decay to min_lr 0,
AdamW betas 0.9/0.95, weight decay 0.1, grad clip 1.0: the seed's schedule). The three seed
models use the seed's batch sizes; every key can be overridden
(`zhllama train size=42M batch_size=8`).
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # Learns the offline synthetic corpus in under two CPU minutes (`just demo`): 300 steps of
    # 4,096 tokens take the validation loss from 7.6 to about 1.5 (2,000-token vocab), enough
    # for readable stories that end with EOS.
    "tiny": {
        "dim": 64,
        "n_layers": 5,
        "n_heads": 8,
        "n_kv_heads": 4,
        "max_seq_len": 256,
        "batch_size": 16,
        "gradient_accumulation_steps": 1,
        "max_iters": 300,
        # the cosine runs to 400 but the run stops at 300: in so short a run the steps at a
        # still-high lr teach more than a full decay (val 1.6 vs 2.2 at step 300, measured)
        "lr_decay_iters": 400,
        "learning_rate": 5e-3,
        "min_lr": 5e-4,
        "warmup_iters": 10,
        "eval_interval": 100,
        "eval_iters": 8,
        "log_interval": 10,
    },
    "15M": {
        "dim": 288,
        "n_layers": 6,
        "n_heads": 6,
        "n_kv_heads": 6,
        "max_seq_len": 256,
        "batch_size": 128,
        "gradient_accumulation_steps": 4,
        "max_iters": 100_000,
    },
    "42M": {
        "dim": 512,
        "n_layers": 8,
        "n_heads": 8,
        "n_kv_heads": 8,
        "max_seq_len": 1024,
        "batch_size": 128,
        "gradient_accumulation_steps": 4,
        "max_iters": 20_000,
    },
    "110M": {
        "dim": 768,
        "n_layers": 12,
        "n_heads": 12,
        "n_kv_heads": 12,
        "max_seq_len": 1024,
        "batch_size": 128,
        "gradient_accumulation_steps": 4,
        "max_iters": 20_000,
    },
}
