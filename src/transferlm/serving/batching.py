"""Dynamic batching: inputs of concurrent requests to one model gathered into few forward passes.

    batcher = Batcher("minilm", "embed", run, BatchOptions(max_batch_tokens=8192, max_wait_ms=2))
    vectors = await batcher.submit(inputs, lengths)    # from any number of concurrent requests

The policy (the token-budget batching of Hugging Face's text-embeddings-inference):
- every input waits in one queue per (model, task); the worker takes inputs in arrival order
  until their tokens reach `max_batch_tokens`, after the oldest has waited at most `max_wait_ms`
  (or at once when the budget is already full: while the model is busy, the queue fills, so
  under load there is no waiting at all);
- the inputs taken are sorted by length, longest first, and cut into forward passes whose
  padded size (rows x longest row) stays within `max_batch_tokens`, so each pass pads only to
  texts of about its own length (`plan_passes`: where to cut is chosen to minimise padded
  tokens plus a fixed cost per pass);
- each pass runs on the one compute thread (`executor`) that every model shares, so two models
  never fight over the CPU cores; results go back to each request as soon as its pass is done;
- a pass that raises is run again one input at a time, so the input that fails gets the error
  (a 500 for its request) and the others their results.

`BatchOptions(enabled=False)` is the baseline: one request's inputs per pass, nothing gathered.

Generation (`GenerationBatcher`, one per decoder) is continuous batching, as in
text-generation-inference: each new prompt is prefilled alone at a step boundary and joins the
running `DecodeBatch` (models/decoder.py); every decode step is one forward pass over all active
sequences; a sequence leaves when it stops (a stop token, max_new_tokens, or its client went
away). Each step is one job on the compute thread, so other models' passes interleave with it.
With batching off, app.py runs each stream's steps as their own jobs (`DecoderModel.steps`).

What this file does not do: priorities, time-outs of queued inputs, batched prefill (prompts are
prefilled one at a time, so a sequence's first token is exactly what it is alone), or preemption.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .metrics import ServerMetrics


@dataclass
class BatchOptions:
    enabled: bool = True  # False: one request at a time (the load test's baseline)
    # Padded tokens per forward pass. 8192 is 64 texts of 128 tokens; TEI's max-batch-tokens
    # default is 16384 on GPUs, half keeps one CPU pass near 100 ms for MiniLM.
    max_batch_tokens: int = 8192
    # How long the first input of an idle queue waits for company: short, so a lone request
    # hardly pays for batching (TEI does not wait at all; a little waiting helps bursts).
    max_wait_ms: float = 2.0
    # Sequences decoded together by one decoder (continuous batching); later ones wait to join.
    max_decode_rows: int = 32
    # A pass's fixed work in token-equivalents, for cutting a gathered group of mixed lengths into
    # passes (plan_passes). `benchmarks/serve.py --calibrate` fits MiniLM's forward time on this
    # 2-core CPU as 4.46 ms + 149 us x tokens: the fixed part is 30 tokens' worth (2026-12-06), and
    # with 30 the load test served 80.2 req/s against 65.6 with 0 (each pass filled to the budget).
    pass_cost_tokens: float = 30.0

    def __post_init__(self) -> None:
        if self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1, not {self.max_batch_tokens}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, not {self.max_wait_ms}")
        if self.max_decode_rows < 1:
            raise ValueError(f"max_decode_rows must be at least 1, not {self.max_decode_rows}")
        if self.pass_cost_tokens < 0:
            raise ValueError(f"pass_cost_tokens must be >= 0, not {self.pass_cost_tokens}")


@dataclass
class _Item:
    payload: Any
    length: int  # tokens, specials included
    future: asyncio.Future
    request: int  # which submit() call it came from
    arrived: float


def plan_passes(lengths: Sequence[int], max_batch_tokens: int, pass_cost_tokens: float = 0.0) -> list[list[int]]:
    """Indices sorted longest first, cut into passes of consecutive lengths, each within
    rows x longest <= max_batch_tokens (an input longer than the budget runs alone).

    Where to cut is chosen exactly, by dynamic programming over the sorted lengths, to minimise
    the padded tokens computed plus `pass_cost_tokens` per pass (a pass's fixed work: module
    calls, kernel launches, in token-equivalents). With 0, every pass is filled greedily up to
    the budget (one pass for a group that fits), as in TEI; with a cost, a group of mixed lengths
    is split where padding the short texts to the long ones would cost more than another pass.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if pass_cost_tokens <= 0:  # greedy: fill each pass up to the budget
        passes: list[list[int]] = []
        for i in order:
            if passes and (len(passes[-1]) + 1) * lengths[passes[-1][0]] <= max_batch_tokens:
                passes[-1].append(i)  # the pass's first index is its longest
            else:
                passes.append([i])
        return passes
    L = np.array([lengths[i] for i in order], dtype=np.float64)  # descending
    n = len(L)
    best = np.zeros(n + 1)  # best[j]: cheapest cost of the first j sorted inputs
    cut = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        rows = j - np.arange(j)  # a last pass of inputs i..j-1 has j - i rows, padded to L[i]
        padded = rows * L[:j]
        cost = best[:j] + padded + pass_cost_tokens
        cost[(padded > max_batch_tokens) & (rows > 1)] = np.inf
        cut[j] = int(np.argmin(cost))
        best[j] = cost[cut[j]]
    bounds, j = [], n
    while j > 0:
        bounds.append((int(cut[j]), j))
        j = int(cut[j])
    return [order[a:b] for a, b in reversed(bounds)]


class Batcher:
    """The queue and the worker of one (model, task)."""

    def __init__(self, model: str, task: str, run: Callable[[list[Any]], list[Any]], options: BatchOptions,
                 executor: Executor, metrics: ServerMetrics | None = None) -> None:
        self.model, self.task, self.run, self.options = model, task, run, options
        self.executor, self.metrics = executor, metrics
        self.pending: list[_Item] = []
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._requests = 0

    async def submit(self, payloads: Sequence[Any], lengths: Sequence[int]) -> list[Any]:
        """Queue one request's inputs; their results, in order (the first failure raises)."""
        if len(payloads) != len(lengths):
            raise ValueError(f"{len(payloads)} inputs but {len(lengths)} lengths")
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._loop(), name=f"batcher-{self.model}-{self.task}")
        self._requests += 1
        now = time.perf_counter()
        items = [_Item(p, int(n), loop.create_future(), self._requests, now) for p, n in zip(payloads, lengths)]
        self.pending.extend(items)
        self._queue_changed()
        self._wake.set()
        try:
            return list(await asyncio.gather(*(it.future for it in items)))
        finally:  # a cancelled request (client gone) leaves nothing queued behind
            gone = {id(it) for it in items if it.future.cancelled()}
            if gone:
                self.pending = [it for it in self.pending if id(it) not in gone]
                self._queue_changed()

    def _queue_changed(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_length.set(len(self.pending), model=self.model)

    async def _gather(self) -> list[_Item]:
        """Wait for inputs, then take the next group (see the module docstring)."""
        assert self._wake is not None
        while not self.pending:
            self._wake.clear()
            await self._wake.wait()
        if not self.options.enabled:  # the baseline: the oldest request's inputs, alone
            first = self.pending[0].request
            taken = [it for it in self.pending if it.request == first]
        else:
            budget = self.options.max_batch_tokens
            deadline = self.pending[0].arrived + self.options.max_wait_ms / 1000
            while sum(it.length for it in self.pending) < budget:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    break
            taken, total = [], 0
            for it in self.pending:  # arrival order: the oldest are never passed over
                if taken and total + it.length > budget:
                    break
                taken.append(it)
                total += it.length
        ids = {id(it) for it in taken}
        self.pending = [it for it in self.pending if id(it) not in ids]
        self._queue_changed()
        return taken

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            taken = [it for it in await self._gather() if not it.future.done()]
            budget = self.options.max_batch_tokens if self.options.enabled else 10 ** 12
            for idx in plan_passes([it.length for it in taken], budget, self.options.pass_cost_tokens):
                group = [taken[i] for i in idx if not taken[i].future.done()]
                if not group:
                    continue
                if self.metrics is not None:
                    self.metrics.batch(self.model, self.task, len(group), len(group) * group[0].length)
                    self.metrics.inputs.inc(len(group), model=self.model, task=self.task)
                outcomes = await loop.run_in_executor(self.executor, self._run_safely, [it.payload for it in group])
                for it, (ok, value) in zip(group, outcomes):
                    if it.future.done():  # the request was cancelled meanwhile
                        continue
                    if ok:
                        it.future.set_result(value)
                    else:
                        it.future.set_exception(value)

    def _run_safely(self, payloads: list[Any]) -> list[tuple[bool, Any]]:
        """(ok, result or exception) per input; a failing pass is retried one input at a time."""
        try:
            results = self.run(payloads)
            if len(results) != len(payloads):
                raise RuntimeError(f"{self.model}: {len(results)} results for {len(payloads)} inputs")
            return [(True, r) for r in results]
        except Exception as e:  # noqa: BLE001 - any model error goes back to its request
            if len(payloads) == 1:
                return [(False, e)]
        return [self._run_safely([p])[0] for p in payloads]


class _Sequence:
    """One /generate request inside the GenerationBatcher."""

    def __init__(self, ids: list[int], opts: Any, loop: asyncio.AbstractEventLoop) -> None:
        import torch

        self.ids, self.opts, self.loop = ids, opts, loop
        self.generator = torch.Generator().manual_seed(opts.seed) if opts.seed is not None else None
        self.out: asyncio.Queue = asyncio.Queue()  # token ids, then None (done) or an exception
        self.produced = 0  # tokens chosen, a stop token included (as Decoder.stream counts them)
        self.last = -1  # the newest token, fed at the next step
        self.gone = False  # the client went away: leave at the next step boundary

    def choose(self, logits) -> bool:
        """Pick the next token from logits (V,) (Decoder's next_token); False when the sequence ends."""
        from ..models.decoder import next_token

        o = self.opts
        tok = int(next_token(logits[None], o.do_sample, o.temperature, o.top_k, o.top_p, self.generator)[0])
        self.produced += 1
        if tok in o.stop_token_ids:
            return False
        self.last = tok
        self.loop.call_soon_threadsafe(self.out.put_nowait, tok)
        return self.produced < o.max_new_tokens


class GenerationBatcher:
    """Continuous batching of one decoder's /generate and /generate_stream requests."""

    def __init__(self, model: Any, options: BatchOptions, executor: Executor,
                 metrics: ServerMetrics | None = None) -> None:
        from ..models.decoder import DecodeBatch

        self.served, self.options, self.executor, self.metrics = model, options, executor, metrics
        self.batch = DecodeBatch(model.model)  # touched on the compute thread only
        self.waiting: list[_Sequence] = []
        self.active: list[_Sequence] = []  # row i of the batch decodes active[i]
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    async def stream(self, ids: list[int], opts: Any) -> AsyncIterator[int]:
        """The new token ids of `ids`'s continuation as they are chosen (stop tokens not included)."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._loop(), name=f"generate-{self.served.name}")
        seq = _Sequence(ids, opts, loop)
        if opts.max_new_tokens == 0:
            return
        self.waiting.append(seq)
        self._queue_changed()
        assert self._wake is not None
        self._wake.set()
        try:
            while True:
                item = await seq.out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            seq.gone = True  # finished, failed or cancelled: nothing more is decoded for it

    def _queue_changed(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_length.set(len(self.waiting), model=self.served.name)

    @staticmethod
    def _finish(seq: _Sequence, error: BaseException | None = None) -> None:
        seq.loop.call_soon_threadsafe(seq.out.put_nowait, error)

    def _prefill(self, seq: _Sequence) -> bool:
        """Compute thread: run the prompt alone, choose its first token, join the batch if it goes on."""
        import torch

        with torch.inference_mode():
            logits, cache = self.batch.prefill(seq.ids)
            if not seq.choose(logits):
                return False
            self.batch.join(cache)
        return True

    def _step(self) -> list[bool]:
        """Compute thread: one decode step over every row; per row, whether it goes on."""
        import torch

        with torch.inference_mode():
            tokens = torch.tensor([s.last for s in self.active])
            logits = self.batch.step(tokens)  # (B, V)
            return [s.choose(logits[r]) for r, s in enumerate(self.active)]

    def _leave(self, rows: list[int]) -> None:
        self.batch.leave(rows)
        gone = set(rows)
        self.active = [s for r, s in enumerate(self.active) if r not in gone]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            while not self.waiting and not self.active:
                self._wake.clear()
                await self._wake.wait()
            # a step boundary: the clients gone leave, then waiting prompts are prefilled and join
            gone = [r for r, s in enumerate(self.active) if s.gone]
            if gone:
                await loop.run_in_executor(self.executor, self._leave, gone)
            while self.waiting and len(self.active) < self.options.max_decode_rows:
                seq = self.waiting.pop(0)
                self._queue_changed()
                if seq.gone:
                    continue
                try:
                    goes_on = await loop.run_in_executor(self.executor, self._prefill, seq)
                except Exception as e:  # noqa: BLE001 - this prompt failed; the others go on
                    self._finish(seq, e)
                    continue
                if goes_on:
                    self.active.append(seq)
                else:
                    self._finish(seq)
                if self.metrics is not None:
                    self.metrics.inputs.inc(1, model=self.served.name, task="generate")
            if not self.active:
                continue
            if self.metrics is not None:
                self.metrics.batch(self.served.name, "generate", len(self.active), len(self.active) * self.batch.width)
            try:
                going = await loop.run_in_executor(self.executor, self._step)
            except Exception as e:  # noqa: BLE001 - a failed step fails every row in it
                for s in self.active:
                    self._finish(s, e)
                await loop.run_in_executor(self.executor, self._leave, list(range(len(self.active))))
                continue
            ended = [r for r, ok in enumerate(going) if not ok]
            for r in ended:
                self._finish(self.active[r])
            if ended:
                await loop.run_in_executor(self.executor, self._leave, ended)
