"""`zhllama eval`: validation loss of a training checkpoint or an exported llama2.c file.

Two ways to choose the text, always named in the output:
- `windows` (the default): the same `eval_iters` random batches of windows the training loop
  evaluates on (seed EVAL_SEED), so the figure compares with the run's log;
- `full`: one deterministic pass over the whole validation split, cut into consecutive windows
  of the context length (the last one shorter), every token predicted exactly once.

A ckpt.pt runs through the torch model; a `.bin` (v0/v1/v2) through the Rust engine's
`Model.score`, so an export is evaluated as the engine will run it (int8 included). The data
must come from the model's tokenizer: the vocab size must match, and where both the model and
the shards record their tokenizer, its sha256 must too (as `zhllama train` insists).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from zhllama.errors import ZhllamaError

console = Console(stderr=True)


@dataclass(frozen=True)
class EvalResult:
    loss: float
    tokens: int  # predicted tokens the loss averages over
    method: str  # a sentence naming the text used

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.loss, 50.0))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_tokenizer(
    model_file: Path, tokenizer: Path | None, shards: Any, recorded_sha256: str | None = None
) -> str:
    """Refuse shards made with another tokenizer; answer what was checked, for the output. The
    model's tokenizer is the sha256 its ckpt.pt records, else the file it names or the run's
    tokenizer.model beside it (older checkpoints, exports in their run folder)."""
    want = shards.tokenizer_sha256
    candidates = [] if tokenizer is None else [tokenizer, model_file.parent / tokenizer.name]
    candidates.append(model_file.parent / "tokenizer.model")  # a run folder, even moved
    found = next((p for p in candidates if p.is_file()), None)
    if not want or (found is None and recorded_sha256 is None):
        return "tokenizer not checked (the model or the data records none)"
    have = recorded_sha256 or _sha256(found)  # type: ignore[arg-type]
    name = found.name if found is not None and recorded_sha256 is None else "the model's"
    if have != want:
        raise ZhllamaError(
            f"{shards.dir} was tokenized with another tokenizer than {model_file}'s (sha256 "
            f"{have[:12]}…, the shards' manifest says {want[:12]}…); evaluate on shards made "
            "with the model's tokenizer"
        )
    return f"tokenizer {name} matches the shards (sha256 {have[:12]}…)"


def full_windows(shards: Any, seq_len: int) -> list[np.ndarray]:
    """The validation split as consecutive windows of seq_len + 1 tokens overlapping by one (a
    window's last token is the next one's first), so every token after the first is predicted
    once; the last window may be shorter."""
    stream = np.concatenate([np.asarray(a, dtype=np.int64) for a in shards.arrays("val")])
    return [stream[i : i + seq_len + 1] for i in range(0, len(stream) - 1, seq_len)]


def random_windows(shards: Any, seq_len: int, batch_size: int, batches: int) -> list[np.ndarray]:
    """The training loop's evaluation batches, window by window."""
    from zhllama_data.shards import WindowSampler

    from zhllama_trainer.train import EVAL_SEED

    sampler = WindowSampler(shards, "val", seq_len, batch_size, EVAL_SEED)
    return [row.astype(np.int64) for _ in range(batches) for row in sampler.next_batch()]


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("windows"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a log file gets the result, not bar frames
    )


def _tracked(windows: list[np.ndarray]) -> Iterator[np.ndarray]:
    with _progress() as progress:
        task = progress.add_task("eval", total=len(windows))
        for w in windows:
            yield w
            progress.advance(task)


def torch_loss(model: Any, windows: list[np.ndarray], rt: Any, batch_size: int) -> float:
    """Mean next-token loss of the torch model over `windows`, token-weighted."""
    import torch

    model.eval()
    total, count = 0.0, 0
    # windows of one length go together; the full pass's last, shorter window runs alone
    by_len: dict[int, list[np.ndarray]] = {}
    for w in windows:
        by_len.setdefault(len(w), []).append(w)
    groups = [
        ws[i : i + batch_size] for ws in by_len.values() for i in range(0, len(ws), batch_size)
    ]
    with _progress() as progress, torch.no_grad():
        task = progress.add_task("eval", total=len(windows))
        for group in groups:
            b = torch.from_numpy(np.stack(group)).to(rt.device)
            with rt.autocast():
                _, loss = model(b[:, :-1], b[:, 1:])  # the mean over the group's tokens
            n = b[:, 1:].numel()
            total += loss.item() * n
            count += n
            progress.advance(task, len(group))
    return total / max(count, 1)


def engine_loss(model_file: Path, windows: list[np.ndarray], threads: int | None) -> float:
    """Mean next-token loss of an exported file as the Rust engine runs it."""
    import zhllama_rs

    model = zhllama_rs.Model(model_file, threads=threads)
    total, count = 0.0, 0
    for w in _tracked(windows):
        scores = model.score(w.tolist())
        total -= float(np.sum(scores, dtype=np.float64))
        count += len(scores)
    return total / max(count, 1)


def describe(method: str, windows: list[np.ndarray], data_dir: Path) -> str:
    tokens = sum(len(w) - 1 for w in windows)
    if method == "full":
        return (
            f"full pass over the validation split of {data_dir}: {len(windows)} windows, "
            f"{tokens:,} tokens"
        )
    return (
        f"{len(windows)} random validation windows of {len(windows[0]) - 1} tokens (seed fixed, "
        f"as training evaluates) from {data_dir}; --full for the whole split"
    )


@dataclass
class EvalRequest:
    """What `zhllama eval` was asked; None = the run's setting (or the trainer's default)."""

    model_file: Path
    data_dir: Path | None = None
    full: bool = False
    eval_iters: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    threads: int | None = None


def _is_ckpt(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive


def run_eval(req: EvalRequest) -> tuple[EvalResult, str]:
    """The loss and a line saying what was checked about the tokenizer."""
    import dataclasses

    from zhllama_trainer.checkpoint import load_checkpoint
    from zhllama_trainer.config import TrainConfig, config_from_dict
    from zhllama_trainer.train import open_data

    path = req.model_file
    if not path.is_file():
        raise ZhllamaError(f"{path}: no such model file")
    ckpt_path = path if _is_ckpt(path) else path.parent / "ckpt.pt"  # an export in its run
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    c = config_from_dict(ckpt["config"]) if ckpt is not None else TrainConfig()
    if ckpt is None and req.data_dir is None:
        raise ZhllamaError(f"{path}: no ckpt.pt beside it to name the data; add data_dir=SHARDS")
    changes = {"data_dir": req.data_dir, "eval_iters": req.eval_iters, "batch_size": req.batch_size}
    c = dataclasses.replace(c, **{k: v for k, v in changes.items() if v is not None})
    shards, _ = open_data(c)
    recorded = ckpt.get("tokenizer") if ckpt is not None else None
    recorded_sha = ckpt.get("tokenizer_sha256") if ckpt is not None else None
    tok_note = check_tokenizer(path, Path(recorded) if recorded else None, shards, recorded_sha)

    if path == ckpt_path:
        from zhllama_trainer import runtime
        from zhllama_trainer.checkpoint import model_from_checkpoint

        rt = runtime.start(req.device, c.dtype)
        try:
            model = model_from_checkpoint(ckpt, path).to(rt.device)
            vocab, seq_len = model.args.vocab_size, model.args.max_seq_len
            _check_vocab(path, vocab, shards)
            windows = _windows(req, shards, seq_len, c)
            loss = torch_loss(model, windows, rt, c.batch_size)
        except BaseException:
            runtime.stop(rt, finished=False)  # no barrier: the other ranks may never reach it
            raise
        runtime.stop(rt)
    else:
        import zhllama_rs

        try:
            model = zhllama_rs.Model(path, threads=req.threads)
        except (ValueError, OSError) as e:
            raise ZhllamaError(str(e)) from None
        _check_vocab(path, model.vocab_size, shards)
        windows = _windows(req, shards, model.seq_len, c)
        del model
        loss = engine_loss(path, windows, req.threads)
    method = "full" if req.full else "windows"
    tokens = sum(len(w) - 1 for w in windows)
    return EvalResult(loss, tokens, describe(method, windows, c.data_dir)), tok_note


def _check_vocab(path: Path, vocab: int, shards: Any) -> None:
    if vocab != shards.vocab_size:
        raise ZhllamaError(
            f"{path} has a vocabulary of {vocab} but {shards.dir} was tokenized with "
            f"{shards.vocab_size}; evaluate on shards made with the model's tokenizer"
        )


def _windows(req: EvalRequest, shards: Any, seq_len: int, c: Any) -> list[np.ndarray]:
    if req.full:
        return full_windows(shards, seq_len)
    return random_windows(shards, seq_len, c.batch_size, c.eval_iters)
