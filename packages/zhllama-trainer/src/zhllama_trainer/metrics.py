"""metrics.jsonl (one JSON object per log or eval line) and the loss.png curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zhllama.atomic import atomic_open, atomic_write_text


class MetricsLog:
    """Appends records to `path`; on resume, drops the records past the checkpoint's iteration
    so the file reads as one uninterrupted run."""

    def __init__(self, path: Path, resume_iter: int | None = None) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        if resume_iter is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if rec.get("iter", 0) <= resume_iter:
                    self.records.append(rec)
        self._rewrite()

    def _rewrite(self) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records)
        atomic_write_text(self.path, text)

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as e:  # a write's error names no file; say which (e.g. a full disk)
            raise OSError(e.errno, e.strerror, str(self.path)) from e

    def series(self, kind: str, key: str) -> tuple[list[int], list[float]]:
        rows = [r for r in self.records if r.get("kind") == kind and key in r]
        return [r["iter"] for r in rows], [r[key] for r in rows]


def plot_losses(log: MetricsLog, out: Path, title: str) -> None:
    """Train and validation loss against iterations, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and no GUI backend surprises
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(*log.series("train", "loss"), label="train", linewidth=1, alpha=0.7)
    ax.plot(*log.series("eval", "val_loss"), "o-", label="validation", linewidth=1.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
