"""The training loop, shared by pretraining and fine-tuning.

Nothing in this file knows BERT, NER or any model: `model(batch)` must return a dict with a scalar
"loss" (the mean over the batch's examples or tokens) and may add named components
("mlm_loss", "nsp_accuracy", ...), all of which are averaged over the log interval and written to
RUN_DIR/metrics.jsonl (minGPT's rule: the loop has nothing to do with the model).

What it does, in order of a step: pick the examples of this step (a function of the step number,
so the data position needs no saving), collate them, forward under bf16 autocast where supported,
backward (loss / grad_accum; DDP syncs only on the last micro-batch), clip the global gradient
norm, AdamW step, scheduler step; every `log_every` steps log, every `save_every` steps checkpoint
(atomically, see checkpointing.py). With resume on, it restarts from RUN_DIR/checkpoints/latest:
model, optimizer, scheduler, RNG states (python, numpy, torch) and the step, so a run killed with
SIGKILL and resumed logs the same losses as one that never stopped.

Data order: epoch e is the permutation torch.randperm(N, seed + e) (with shuffle off: 0..N-1); optimizer step s reads the
global batch at offset (s mod steps_per_epoch) * global_batch of it; micro-batch a of rank r takes
its slice. Examples left over at an epoch's end are dropped. A dataset with `set_epoch(e)` is told
the epoch (the NSP reader re-draws its pairs), and so is `on_epoch(e)` if given (ULMFiT's gradual
unfreezing, `optim.GradualUnfreezing`). A collator with `set_seed(seed)` is re-seeded before
each micro-batch with a seed derived from (seed, step, micro-batch, rank), so dynamic masking is
also a function of the position.

DDP: launched by `torchrun --nproc_per_node N ...` the loop finds WORLD_SIZE / RANK / LOCAL_RANK,
joins the process group (gloo on CPU, NCCL on GPUs), wraps the model in DistributedDataParallel and
gives each rank batch_size / (world_size * grad_accum) examples per micro-batch: the same global
batch as one process, so the same updates (up to float summation order).

Does not: run data-loader worker processes (examples are read in the training process; the corpus
readers are memory-mapped and cheap), FSDP, or evaluation beyond calling `eval_fn` every
`eval_every` steps and logging what it returns. Early stopping is the caller's: `request_stop()`
(e.g. from `eval_fn`) ends the loop after the current step; the checkpoint remembers it, so a
stopped run resumed does not train on, and `extra_state` (an object with `state_dict()` /
`load_state_dict(d)`, e.g. the early-stopping bookkeeping) is saved in and restored from it.
"""

from __future__ import annotations

import math
import os
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from .checkpointing import checkpoint_name, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .logging import MetricsLog, progress
from .optim import build_optimizer
from .schedules import build_scheduler


@dataclass
class TrainerConfig:
    run_dir: str = "runs/run"  # metrics.jsonl, checkpoints/ and the plots go here
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 32  # global batch per optimizer step, over all ranks and micro-batches
    grad_accum: int = 1  # micro-batches per optimizer step (each rank)
    lr: float = 1e-4  # BERT appendix A.2: 1e-4 for pretraining
    weight_decay: float = 0.01  # BERT appendix A.2
    betas: tuple[float, float] = (0.9, 0.999)  # BERT appendix A.2
    eps: float = 1e-6  # BERT's optimizer (TF AdamWeightDecay)
    schedule: str = "linear"  # linear | cosine | constant | slanted_triangular
    warmup_steps: int = 0  # BERT used 10,000 of 1M steps; tiny runs need few or none
    min_lr_ratio: float = 0.0  # decay floor as a fraction of lr
    max_grad_norm: float | None = 1.0  # BERT clips the global norm at 1.0; None turns clipping off
    precision: str = "auto"  # auto (bf16 on GPUs that support it, else fp32) | bf16 | fp32
    seed: int = 0  # python / numpy / torch seeds and the data order
    log_every: int = 10  # steps between metric records
    save_every: int = 0  # steps between checkpoints; 0 = only at the end
    keep_last: int = 2  # checkpoints kept on disk
    resume: bool = True  # continue from RUN_DIR/checkpoints/latest when there is one
    eval_every: int = 0  # steps between eval_fn calls; 0 = never
    eval_at_start: bool = False  # also evaluate the untrained model (step 0) on a fresh start: the curve's origin
    progress_bar: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    shuffle: bool = True  # False: every epoch reads the dataset in order (TBPTT language models)

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, not {self.precision!r}")
        if self.max_steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("max_steps, batch_size and grad_accum must be >= 1")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def distributed_setup() -> tuple[int, int, int]:
    """(rank, local_rank, world_size), joining the process group when torchrun started us."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size()
    return 0, 0, 1


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def _count_tokens(batch: Any) -> int:
    if isinstance(batch, dict):
        if isinstance(batch.get("attention_mask"), torch.Tensor):
            return int(batch["attention_mask"].sum())
        if isinstance(batch.get("input_ids"), torch.Tensor):
            return batch["input_ids"].numel()
    return 0


def _derive_seed(*parts: int) -> int:
    h = 0x9E3779B97F4A7C15
    for p in parts:  # boost's hash_combine on 64 bits: stable across runs (Python's hash() is salted)
        h = (h ^ (p + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2))) & 0xFFFFFFFFFFFFFFFF
    return h % (2**63 - 1)


class Trainer:
    """train(model, dataset, collate_fn) with a `TrainerConfig`; `fit()` runs to max_steps."""

    def __init__(self, model: nn.Module, dataset: Sequence, collate_fn: Callable[[list], Any],
                 config: TrainerConfig, *, optimizer: torch.optim.Optimizer | None = None,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                 eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
                 on_epoch: Callable[[int], None] | None = None, extra_state: Any = None):
        self.config = c = config
        self.rank, self.local_rank, self.world = distributed_setup()
        if c.device == "auto":
            self.device = torch.device(f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(c.device)
        if c.batch_size % (self.world * c.grad_accum):
            raise ValueError(f"batch_size {c.batch_size} is not divisible by world_size {self.world} x "
                             f"grad_accum {c.grad_accum}")
        self.micro_batch = c.batch_size // (self.world * c.grad_accum)
        self.steps_per_epoch = len(dataset) // c.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"the dataset has {len(dataset)} examples, fewer than one batch of {c.batch_size}")
        self.use_bf16 = c.precision == "bf16" or (
            c.precision == "auto" and self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        self.model = model.to(self.device)
        self.dataset, self.collate_fn, self.eval_fn, self.on_epoch = dataset, collate_fn, eval_fn, on_epoch
        self.optimizer = optimizer or build_optimizer(model, c.lr, c.weight_decay, betas=c.betas, eps=c.eps)
        self.scheduler = scheduler or build_scheduler(self.optimizer, c.schedule, total_steps=c.max_steps,
                                                      warmup_steps=c.warmup_steps, min_ratio=c.min_lr_ratio)
        self.ddp = None
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.run_dir = Path(c.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.log = MetricsLog(self.run_dir, enabled=self.rank == 0)
        self.step = 0
        self.stopped = False  # set by request_stop(); saved in the checkpoint
        self.extra_state = extra_state
        self._epoch_order: tuple[int, torch.Tensor] | None = None
        seed_everything(c.seed + self.rank)  # dropout etc.; the model was built (and seeded) by the caller

    # ------------------------------------------------------------------ data position
    def _order(self, epoch: int) -> torch.Tensor:
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            if self.on_epoch is not None:  # e.g. optim.GradualUnfreezing; called again on resume
                self.on_epoch(epoch)
            g = torch.Generator().manual_seed(_derive_seed(self.config.seed, epoch))
            order = torch.randperm(len(self.dataset), generator=g) if self.config.shuffle else \
                torch.arange(len(self.dataset))
            self._epoch_order = (epoch, order)
        return self._epoch_order[1]

    def micro_batches(self, step: int) -> list[list[int]]:
        """The dataset indices this rank reads for optimizer step `step` (0-based), per micro-batch."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        order = self._order(epoch)
        base = offset * self.config.batch_size
        out = []
        for a in range(self.config.grad_accum):
            start = base + (a * self.world + self.rank) * self.micro_batch
            out.append(order[start:start + self.micro_batch].tolist())
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        rng = rng_state()
        if self.world > 1:
            all_rng: list[Any] = [None] * self.world
            dist.all_gather_object(all_rng, rng)
        else:
            all_rng = [rng]
        return {"step": self.step, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": all_rng, "world_size": self.world,
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()},
                "stopped": self.stopped,
                **({"extra": self.extra_state.state_dict()} if self.extra_state is not None else {})}

    def request_stop(self) -> None:
        """End the loop after the current step (early stopping); `fit()` still saves."""
        self.stopped = True

    def save(self) -> None:
        latest = latest_checkpoint(self.ckpt_dir)
        if latest is not None and latest.name == checkpoint_name(self.step):
            return  # resumed at the end of a finished run: that checkpoint is this state already
        state = self.state_dict()  # every rank joins the RNG gather
        if self.rank == 0:
            save_checkpoint(self.ckpt_dir, self.step, self.model, state, keep_last=self.config.keep_last)
        if self.world > 1:
            dist.barrier()

    def maybe_resume(self) -> bool:
        if not self.config.resume:
            return False
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            return False
        state = load_checkpoint(path, self.model, map_location=self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.stopped = bool(state.get("stopped", False))
        if self.extra_state is not None and "extra" in state:
            self.extra_state.load_state_dict(state["extra"])
        rngs = state["rng"]
        set_rng_state(rngs[self.rank] if len(rngs) == self.world else rngs[0])
        self.log.truncate_after(self.step)
        return True

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, float]:
        c = self.config
        resumed = self.maybe_resume()
        if resumed and self.rank == 0:
            print(f"resumed from step {self.step} ({self.ckpt_dir / 'latest'})", flush=True)
        model = self.ddp or self.model
        if c.eval_at_start and c.eval_every and self.eval_fn and self.step == 0:
            self._evaluate()
        model.train()
        bar = progress(c.max_steps, self.step, enabled=c.progress_bar and self.rank == 0)
        sums: dict[str, float] = {}
        n_logged, tokens, t0 = 0, 0, time.perf_counter()
        last: dict[str, float] = {}
        while self.step < c.max_steps and not self.stopped:
            lr = self.scheduler.get_last_lr()[0]  # the rate this step's update uses
            step_metrics, step_tokens = self._train_step(model)
            self.step += 1
            tokens += step_tokens
            for k, v in step_metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            n_logged += 1
            if self.step % c.log_every == 0 or self.step == c.max_steps:
                elapsed = time.perf_counter() - t0
                last = {k: v / n_logged for k, v in sums.items()}
                if self.world > 1:  # average the interval's metrics over the ranks
                    keys = sorted(last)
                    vec = torch.tensor([last[k] for k in keys] + [float(tokens)], dtype=torch.float64)
                    dist.all_reduce(vec)
                    last = {k: float(vec[i]) / self.world for i, k in enumerate(keys)}
                    tokens = int(vec[-1])
                tok_s = tokens / elapsed if elapsed > 0 else 0.0
                record = {"step": self.step, **last, "lr": lr, "tokens_per_s": tok_s}
                self.log.log(record)
                bar.set_postfix(loss=f"{last.get('loss', float('nan')):.4f}", tok_s=f"{tok_s:,.0f}")
                sums, n_logged, tokens, t0 = {}, 0, 0, time.perf_counter()
            if c.eval_every and self.eval_fn and self.step % c.eval_every == 0:
                self._evaluate()
            if c.save_every and self.step % c.save_every == 0 and self.step < c.max_steps:
                self.save()
            bar.update(1)
        bar.close()
        if self.eval_fn and c.eval_every and self.step % c.eval_every != 0:
            self._evaluate()
        self.save()
        return last

    def _evaluate(self) -> None:
        self.model.eval()
        with torch.no_grad():
            metrics = self.eval_fn(self.model)
        self.model.train()
        self.log.log({"step": self.step, **{f"eval_{k}": v for k, v in metrics.items()}})

    def _train_step(self, model: nn.Module) -> tuple[dict[str, float], int]:
        c = self.config
        sums: dict[str, float] = {}
        n_tokens = 0
        micro = self.micro_batches(self.step)
        for a, indices in enumerate(micro):
            if hasattr(self.collate_fn, "set_seed"):
                self.collate_fn.set_seed(_derive_seed(c.seed, self.step, a, self.rank))
            batch = self.collate_fn([self.dataset[i] for i in indices])
            n_tokens += _count_tokens(batch)  # on the host, before the copy: no device sync
            batch = _to(batch, self.device)
            sync = self.ddp is None or a == len(micro) - 1
            ctx = nullcontext() if sync else self.ddp.no_sync()  # DDP all-reduces on the last micro-batch only
            with ctx:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
                    out = model(batch)
                loss = out["loss"]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"step {self.step + 1}: the loss is {loss.item()}")
                (loss / c.grad_accum).backward()
            for k, v in out.items():
                if isinstance(v, torch.Tensor) and v.dim() == 0:
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / c.grad_accum
                elif isinstance(v, (int, float)):
                    sums[k] = sums.get(k, 0.0) + float(v) / c.grad_accum
        if c.max_grad_norm is not None:
            sums["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return sums, n_tokens


def steps_for(dataset_size: int, batch_size: int, epochs: float) -> int:
    """Optimizer steps for `epochs` passes over a dataset (drop-last batches)."""
    return max(1, math.floor(dataset_size // batch_size * epochs))
