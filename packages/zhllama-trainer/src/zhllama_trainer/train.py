"""The training loop: one CPU, one GPU, or many through torchrun and DDP.

One optimizer step consumes `gradient_accumulation_steps` micro-batches (the global count). Each
micro-batch slot s has its own window sampler, seeded by (seed, slot), and rank r of W runs slots
r·a .. r·a+a-1 (a = G / W). The data a step sees therefore depends only on the seed and G, never
on the number of processes: two ranks give the same result as one with the same global batch,
and a run can resume on a different number of GPUs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel as DDP
from zhllama.errors import ZhllamaError
from zhllama.registry import get_registry

from zhllama_trainer import runtime
from zhllama_trainer.checkpoint import load_checkpoint, save_checkpoint
from zhllama_trainer.config import TrainConfig, config_from_dict
from zhllama_trainer.metrics import MetricsLog, plot_losses
from zhllama_trainer.model import ModelArgs, Transformer, flops_per_token
from zhllama_trainer.step_meter import StepMeter

console = Console(stderr=True)

EVAL_SEED = 4242  # the validation windows are the same at every evaluation


@dataclass
class TrainResult:
    iter_num: int
    best_val_loss: float
    last_val_loss: float | None
    run_dir: Path


def lr_at(it: int, c: TrainConfig) -> float:
    """Linear warmup for warmup_iters, cosine decay to min_lr at lr_decay_iters, then min_lr."""
    if not c.decay_lr:
        return c.learning_rate
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    if it >= c.decay_iters:
        return c.min_lr
    ratio = (it - c.warmup_iters) / max(1, c.decay_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.learning_rate - c.min_lr)


def open_data(c: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """The ShardSet of `c.data_dir` and its manifest; clear errors when it is missing."""
    from zhllama_data.shards import ShardSet

    manifest_path = c.data_dir / "manifest.json"
    if not manifest_path.is_file():
        raise ZhllamaError(
            f"{c.data_dir}: no pretokenized data here (no manifest.json); "
            f"run `zhllama data pretokenize` or set data_dir=FOLDER"
        )
    shards = ShardSet(c.data_dir)  # reads and checks the manifest, once
    for split in ("train", "val"):
        if shards.num_tokens(split) == 0:
            raise ZhllamaError(f"{c.data_dir}: the {split} split has no tokens")
    return shards, shards.manifest


def model_args_for(c: TrainConfig, data_vocab: int) -> ModelArgs:
    if c.vocab_size is not None and c.vocab_size != data_vocab:
        raise ZhllamaError(
            f"vocab_size={c.vocab_size} but the data in {c.data_dir} was tokenized with a "
            f"vocabulary of {data_vocab}; leave vocab_size out (the data's is used), set "
            f"vocab_size={data_vocab}, or use matching data"
        )
    return ModelArgs(
        dim=c.dim,
        n_layers=c.n_layers,
        n_heads=c.n_heads,
        n_kv_heads=c.n_kv_heads,
        vocab_size=data_vocab,
        hidden_dim=c.hidden_dim,
        multiple_of=c.multiple_of,
        max_seq_len=c.max_seq_len,
        dropout=c.dropout,
    )


def find_tokenizer(c: TrainConfig, manifest: dict[str, Any]) -> Path | None:
    """The tokenizer .model: the config's, else the one the manifest names.

    The manifest records it as an absolute path and relative to the shard folder (older
    manifests: as typed, relative to wherever pretokenize ran); each place is tried, from any
    working folder, and the first file with the manifest's sha256 is the one. `None` when the
    manifest names none, or none of its places holds the right file (a note says which)."""
    if c.tokenizer is not None:
        if not c.tokenizer.is_file():
            raise ZhllamaError(f"{c.tokenizer}: no such tokenizer model")
        return _same_as_data(c.tokenizer, c, manifest)
    named = manifest.get("tokenizer")
    if not named:
        return None
    places = [Path(named)]
    if manifest.get("tokenizer_relative"):
        places.append(c.data_dir / manifest["tokenizer_relative"])
    places += [c.data_dir / named, c.data_dir / Path(named).name]
    found = [p for p in dict.fromkeys(places) if p.is_file()]
    for cand in found:
        with contextlib.suppress(ZhllamaError):
            return _same_as_data(cand, c, manifest)
    if found:
        return _same_as_data(found[0], c, manifest)  # raises: it is not the data's tokenizer
    console.print(
        f"[yellow]note:[/] {c.data_dir}/manifest.json names the tokenizer {named}, which is not "
        f"there any more; pass tokenizer=PATH to ship it with the run"
    )
    return None


def _same_as_data(tok: Path, c: TrainConfig, manifest: dict[str, Any]) -> Path:
    """`tok`, if it is the tokenizer the shards were made with (else its ids would not match)."""
    want = manifest.get("tokenizer_sha256")
    have = hashlib.sha256(tok.read_bytes()).hexdigest()
    if want and have != want:
        raise ZhllamaError(
            f"{tok}: not the tokenizer the data in {c.data_dir} was made with (sha256 "
            f"{have[:12]}…, the manifest says {want[:12]}…); pass that one or pretokenize again"
        )
    return tok


def make_optimizer(model: Transformer, c: TrainConfig, device_type: str) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norm gains)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": c.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    extra = {"fused": True} if device_type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=c.learning_rate, betas=(c.beta1, c.beta2), **extra)


class Batches:
    """The micro-batch slots this rank runs, each a WindowSampler over the train split."""

    def __init__(self, shards: Any, c: TrainConfig, rt: runtime.Runtime) -> None:
        from zhllama_data.shards import WindowSampler

        g = c.gradient_accumulation_steps
        if g % rt.world_size:
            raise ZhllamaError(
                f"gradient_accumulation_steps={g} must be a multiple of the {rt.world_size} "
                f"processes (each runs an equal share of the micro-batches)"
            )
        per_rank = g // rt.world_size
        self.slots = list(range(rt.rank * per_rank, (rt.rank + 1) * per_rank))
        self.samplers = {
            s: WindowSampler(shards, "train", c.max_seq_len, c.batch_size, c.seed, s, g)
            for s in self.slots
        }
        self.device = rt.device

    def get(self, slot: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch = torch.from_numpy(self.samplers[slot].next_batch())  # (B, T+1) int64
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        else:
            batch = batch.to(self.device)
        return batch[:, :-1], batch[:, 1:]

    def state(self) -> dict[int, Any]:
        return {s: self.samplers[s].state_dict() for s in self.slots}

    def load(self, states: dict[Any, Any]) -> None:
        for s in self.slots:
            st = states.get(s, states.get(str(s)))
            if st is None:
                raise ZhllamaError(f"checkpoint has no data position for micro-batch slot {s}")
            self.samplers[s].load_state_dict(st)


def gather(obj: Any, rt: runtime.Runtime) -> list[Any]:
    """Every rank's `obj`, in rank order (just [obj] without DDP)."""
    if not rt.distributed:
        return [obj]
    out: list[Any] = [None] * rt.world_size
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def evaluate(model: torch.nn.Module, shards: Any, c: TrainConfig, rt: runtime.Runtime) -> float:
    """Mean loss over eval_iters fixed validation batches, split across the ranks."""
    from zhllama_data.shards import WindowSampler

    sampler = WindowSampler(shards, "val", c.max_seq_len, c.batch_size, EVAL_SEED)
    was_training = model.training
    model.eval()
    total = torch.zeros(2, device=rt.device, dtype=torch.float64)
    for k in range(c.eval_iters):
        batch = sampler.next_batch()
        if k % rt.world_size != rt.rank:
            continue
        b = torch.from_numpy(batch).to(rt.device)
        with rt.autocast():
            _, loss = model(b[:, :-1], b[:, 1:])
        total += torch.stack([loss.double(), torch.ones((), device=rt.device, dtype=torch.float64)])
    if rt.distributed:
        dist.all_reduce(total)
    model.train(was_training)
    return (total[0] / total[1]).item()


class Trackers:
    """tensorboard and wandb, each only when asked for and installed."""

    def __init__(self, c: TrainConfig, run_dir: Path) -> None:
        self.tb = self.wandb = None
        if c.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                console.print("[yellow]tensorboard is not installed; skipping it[/]")
        if c.wandb:
            try:
                import wandb

                self.wandb = wandb.init(project=c.wandb_project, config=c.to_dict())
            except ImportError:
                console.print("[yellow]wandb is not installed; skipping it[/]")

    def log(self, it: int, values: dict[str, float]) -> None:
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, it)
        if self.wandb is not None:
            self.wandb.log(values, step=it)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


# Files the trainer writes into the run folder (atomically): the stale temporaries of these, and
# only these, are removed when a run starts.
RUN_FILES = ["ckpt.pt", "model.bin", "model.bin.json", "tokenizer.bin", "tokenizer.model",
             "loss.png", "metrics.jsonl"]  # fmt: skip


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Exports:
    """model.bin (llama2c v0, via the exporter component) and tokenizer.bin beside it.

    model.bin.json records which iteration model.bin holds and its sha256, so that a resumed
    run can tell that a kill came between saving ckpt.pt and exporting its weights."""

    def __init__(self, run_dir: Path, tokenizer: Path | None) -> None:
        self.run_dir, self.tokenizer = run_dir, tokenizer
        self.noted: set[str] = set()
        self.tokenizer_written = False

    def _note(self, key: str, msg: str) -> None:
        if key not in self.noted:
            self.noted.add(key)
            console.print(f"[yellow]note:[/] {msg}")

    @property
    def record(self) -> Path:
        return self.run_dir / "model.bin.json"

    def holds(self, it: int) -> bool:
        """Whether model.bin is the export of iteration `it` (and was not replaced since)."""
        model = self.run_dir / "model.bin"
        try:
            rec = json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return (
            isinstance(rec, dict)
            and rec.get("iter") == it
            and model.is_file()
            and rec.get("sha256") == _sha256(model)
        )

    def write(self, model: Transformer, it: int) -> None:
        try:
            exporter = get_registry().create("exporters", "llama2c")
        except ZhllamaError as e:
            self._note("model", f"model.bin not written: {e}")
        else:
            from zhllama.atomic import atomic_write_json

            out = self.run_dir / "model.bin"
            exporter.export(model, out)
            atomic_write_json(self.record, {"iter": it, "sha256": _sha256(out)})
        if self.tokenizer is None:
            self._note("tok", "tokenizer.bin not written: the data names no tokenizer model")
            return
        out = self.run_dir / "tokenizer.bin"
        if self.tokenizer_written:  # it never changes during a run
            return
        try:
            from zhllama_tokenizer.binfile import export_llama2c
        except ImportError as e:
            self._note("tok", f"tokenizer.bin not written: {e}")
            return
        export_llama2c(self.tokenizer, out)
        self.tokenizer_written = True


def _rng_state(rt: runtime.Runtime) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if rt.device_type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(rt.device)
    return state


def _set_rng_state(state: dict[str, Any], rt: runtime.Runtime) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if rt.device_type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), rt.device)


class _Interrupt:
    """Ctrl-C asks the loop to stop at the next step boundary, after saving a checkpoint."""

    def __init__(self, enabled: bool) -> None:
        self.requested = False
        self.enabled = enabled  # off under DDP: ranks would stop at different steps
        self._old: Any = None

    def __enter__(self) -> _Interrupt:
        if not self.enabled:
            return self
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._old = None
        return self

    def _handle(self, *_: Any) -> None:
        self.requested = True
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)  # a second Ctrl-C stops at once

    def __exit__(self, *_: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def train(
    c: TrainConfig,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train per `c`; with `resume`, continue from run_dir/ckpt.pt. `on_step(iter)` runs after
    each completed optimizer step (tests use it to kill a run at a chosen step)."""
    c.validate()
    run_dir = c.run_dir
    ckpt_path = run_dir / "ckpt.pt"
    ckpt = None
    if resume:
        ckpt = load_checkpoint(ckpt_path)
        saved = config_from_dict(ckpt["config"])
        # The run's shape and data stream come from the checkpoint; schedule keys may change.
        keep = {"max_iters", "eval_interval", "eval_iters", "log_interval", "device", "dtype",
                "compile", "attention", "threads", "progress", "plot", "tensorboard", "wandb",
                "export_bin", "lr_decay_iters", "min_lr", "data_dir", "out_dir",
                "peak_flops"}  # fmt: skip
        c = dataclasses.replace(saved, **{k: getattr(c, k) for k in keep})

    if c.threads:
        torch.set_num_threads(c.threads)
    shards, manifest = open_data(c)
    args = model_args_for(c, shards.vocab_size)
    rt = runtime.start(c.device, c.dtype)
    try:
        result = _train(c, rt, shards, manifest, args, ckpt, on_step)
    except BaseException:
        runtime.stop(rt, finished=False)
        raise
    runtime.stop(rt)
    return result


def _train(
    c: TrainConfig,
    rt: runtime.Runtime,
    shards: Any,
    manifest: dict[str, Any],
    args: ModelArgs,
    ckpt: dict[str, Any] | None,
    on_step: Callable[[int], None] | None,
) -> TrainResult:
    run_dir = c.run_dir
    if rt.master:
        run_dir.mkdir(parents=True, exist_ok=True)
        from zhllama.atomic import clean_stale_temporaries

        stale = clean_stale_temporaries(run_dir, RUN_FILES)
        if stale:
            console.print(
                f"[yellow]note:[/] removed {len(stale)} temporary file(s) an interrupted run "
                f"left in {run_dir}: {', '.join(p.name for p in stale)}"
            )

    # Tokenizer: keep a copy in the run so the run directory is self-contained.
    tokenizer = find_tokenizer(c, manifest)
    # which tokenizer the model's ids mean, for `zhllama eval` to check other data against
    tokenizer_sha256 = manifest.get("tokenizer_sha256")
    if tokenizer is not None:
        local_tok = run_dir / "tokenizer.model"
        if rt.master and tokenizer.resolve() != local_tok.resolve():
            from zhllama.atomic import atomic_write_bytes

            atomic_write_bytes(local_tok, tokenizer.read_bytes())
        tokenizer = local_tok
    elif rt.master:
        console.print(f"[yellow]note:[/] {c.data_dir}/manifest.json names no tokenizer model")

    torch.manual_seed(c.seed)  # same initial weights on every rank
    model = Transformer(args).to(rt.device)
    model.set_attention_kernel(c.attention)
    optimizer = make_optimizer(model, c, rt.device_type)
    batches = Batches(shards, c, rt)
    iter_num, best_val, best_iter = 0, float("inf"), None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        iter_num, best_val = int(ckpt["iter_num"]), float(ckpt["best_val_loss"])
        best_iter = ckpt.get("best_iter")
        batches.load(ckpt["data_state"])
        rngs = ckpt["rng"]
        _set_rng_state(rngs[rt.rank] if rt.rank < len(rngs) else rngs[0], rt)
    else:
        torch.manual_seed(c.seed + rt.rank)  # dropout masks differ across ranks

    raw_model = model
    if c.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    if rt.distributed:
        model = DDP(model, device_ids=[rt.local_rank] if rt.device_type == "cuda" else None)
    scaler = torch.amp.GradScaler(enabled=rt.dtype == torch.float16)

    g = c.gradient_accumulation_steps
    per_rank = g // rt.world_size
    tokens_per_iter = c.batch_size * g * c.max_seq_len
    flops_tok = flops_per_token(args, c.max_seq_len, raw_model.num_params())
    peak = rt.peak_flops(c.peak_flops)

    log = MetricsLog(run_dir / "metrics.jsonl", iter_num if ckpt else None) if rt.master else None
    trackers = Trackers(c, run_dir) if rt.master else None
    exports = Exports(run_dir, tokenizer) if rt.master else None
    # ckpt.pt holds the best weights, so model.bin must be their export; a kill between the two
    # writes leaves an older model.bin, which this run may never replace (it may have nothing
    # left to run, or never improve again)
    stale_export = ckpt is not None and c.export_bin and best_iter == iter_num
    if exports is not None and stale_export and not exports.holds(iter_num):
        console.print(
            f"[yellow]note:[/] model.bin is older than ckpt.pt; exporting iter {iter_num}"
        )
        exports.write(raw_model, iter_num)
    if rt.master:
        console.print(
            f"[bold]{c.size}[/]: {raw_model.num_params() / 1e6:.2f}M parameters, "
            f"{tokens_per_iter:,} tokens per step on {rt.world_size}× {rt.device} "
            f"({str(rt.dtype).removeprefix('torch.')}), "
            f"{'resuming at' if ckpt else 'starting at'} iter {iter_num} of {c.max_iters} "
            f"→ {run_dir}"
        )

    def save(it: int) -> None:
        state = gather(batches.state(), rt)
        rngs = gather(_rng_state(rt), rt)
        if not rt.master:
            return
        merged = {s: st for part in state for s, st in part.items()}
        save_checkpoint(
            run_dir / "ckpt.pt",
            {
                "model": raw_model.state_dict(),
                "model_args": dataclasses.asdict(args),
                "config": c.to_dict(),
                "iter_num": it,
                "best_val_loss": best_val,
                "best_iter": best_iter,
                "optimizer": optimizer.state_dict(),
                "rng": rngs,
                "data_state": merged,
                "tokenizer": str(tokenizer) if tokenizer is not None else None,
                "tokenizer_sha256": tokenizer_sha256,
            },
        )

    last_val: float | None = None
    step_loss = torch.zeros((), device=rt.device)
    t_log, it_log = time.perf_counter(), iter_num
    stats = "loss ? lr ? tok/s ? mfu ?"
    model.train()
    with (
        _progress(rt.master and c.progress) as progress,
        _Interrupt(not rt.distributed) as interrupt,
    ):
        task = progress.add_task("train", total=c.max_iters, completed=iter_num, stats=stats)
        micro_tokens = c.batch_size * c.max_seq_len * rt.world_size
        meter = StepMeter(per_rank, micro_tokens, c.max_iters - iter_num)
        # no terminal (a log file, nohup): the bar is not drawn, so a long step prints a line
        # now and then instead
        line_every = None if console.is_terminal else 60.0
        last_line = time.perf_counter()
        while iter_num < c.max_iters:
            lr = lr_at(iter_num, c)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss.zero_()
            meter.step_started()
            for m, slot in enumerate(batches.slots):
                x, y = batches.get(slot)
                last = m == per_rank - 1
                sync = contextlib.nullcontext() if last or not rt.distributed else model.no_sync()
                with sync:
                    with rt.autocast():
                        _, loss = model(x, y)
                        loss = loss / per_rank
                    scaler.scale(loss).backward()
                step_loss += loss.detach()
                inside = meter.micro_batch_done(m + 1)
                if inside is not None and rt.master:
                    progress.update(task, stats=f"step {iter_num + 1}: {inside}")
                    if line_every is not None and time.perf_counter() - last_line > line_every:
                        last_line = time.perf_counter()
                        console.print(f"step {iter_num + 1}: {inside}")
                note = meter.estimate()
                if note is not None and rt.master:
                    progress.console.print(note)
            if c.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1
            meter.step_done()
            note = meter.estimate()
            if note is not None and rt.master:
                progress.console.print(note)

            if iter_num % c.log_interval == 0 or iter_num == c.max_iters:
                if rt.distributed:
                    dist.all_reduce(step_loss)
                    step_loss /= rt.world_size
                loss_v = step_loss.item()
                now = time.perf_counter()
                tok_s = tokens_per_iter * (iter_num - it_log) / max(now - t_log, 1e-9)
                t_log, it_log = now, iter_num
                mfu = flops_tok * tok_s / (peak * rt.world_size) if peak else None
                stats = f"loss {loss_v:.4f} lr {lr:.2e} tok/s {tok_s:,.0f}"
                stats += f" mfu {mfu:.1%}" if mfu is not None else ""
                if rt.master:
                    rec = {"kind": "train", "iter": iter_num, "loss": loss_v, "lr": lr,
                           "tokens_per_s": tok_s, "mfu": mfu, "time": time.time()}  # fmt: skip
                    log.append(rec)
                    trackers.log(iter_num, {"train/loss": loss_v, "lr": lr, "tok_s": tok_s})
            progress.update(task, completed=iter_num, stats=stats)

            if iter_num % c.eval_interval == 0 or iter_num == c.max_iters:
                t0 = time.perf_counter()
                last_val = evaluate(model, shards, c, rt)
                improved = last_val < best_val
                best_val = min(best_val, last_val)
                if improved:
                    best_iter = iter_num
                save(iter_num)
                if rt.master:
                    log.append({"kind": "eval", "iter": iter_num, "val_loss": last_val,
                                "best_val_loss": best_val, "time": time.time()})  # fmt: skip
                    trackers.log(iter_num, {"val/loss": last_val})
                    if c.plot:
                        plot_losses(log, run_dir / "loss.png", f"zhllama {c.size}")
                    if improved and c.export_bin:
                        exports.write(raw_model, iter_num)
                    progress.console.print(
                        f"iter {iter_num}: val loss {last_val:.4f} "
                        f"(ppl {math.exp(min(last_val, 50)):.2f}){' [green]best[/]' * improved}"
                    )
                t_log += time.perf_counter() - t0  # evaluation time is not training speed

            if interrupt.requested:
                save(iter_num)
                if rt.master:
                    progress.console.print(
                        f"[yellow]interrupted at iter {iter_num}; checkpoint saved, "
                        f"continue with --resume[/]"
                    )
                raise KeyboardInterrupt
            if on_step is not None:
                on_step(iter_num)
    if rt.master and trackers is not None:
        trackers.close()
    return TrainResult(iter_num, best_val, last_val, run_dir)
