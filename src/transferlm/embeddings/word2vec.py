"""word2vec (Mikolov et al. 2013a, "Efficient estimation..."; 2013b, "Distributed representations..."):
skip-gram and CBOW with negative sampling, trained on sentences of tokens, in PyTorch.

The recipe is the C tool's and gensim's, step for step:
- vocabulary: words with count >= min_count, most frequent first (ties: last seen first, as gensim);
- subsampling of frequent words (2013b sec. 2.3, in the C tool's / gensim's form): word w is kept
  with probability (sqrt(c_w / t) + 1) t / c_w, t = sample * (words in the corpus), redrawn each epoch;
- dynamic window: each centre word draws its window b uniformly from 1..window;
- noise distribution: unigram counts ^ 0.75 (2013b sec. 2.2), a negative equal to the target skipped;
- skip-gram: the context word's input vector predicts the centre word (the C tool's order), CBOW:
  the mean of the context input vectors predicts the centre word, each context word receiving the
  whole error (cbow_mean=1);
- update: g = (label - sigmoid(v_out . h)) * lr, plain SGD on the rows touched (2013b eq. 4);
- learning rate decays linearly from alpha to min_alpha over all epochs' words;
- init: input vectors uniform(-0.5, 0.5) / dim, output vectors zero.

Vectorised: a job of about `batch_words` words becomes arrays of (input, target) pairs (SG) or
(context window, target) rows (CBOW); each block of `batch_pairs` of them is one gathered forward,
one closed-form gradient and one `index_add_` per table (the updates of a block are summed, a mini-batch
version of the C tool's one-pair-at-a-time SGD). `workers` threads take jobs from a queue and update the
shared tables without locks: Hogwild! (Recht et al. 2011), as the C tool and gensim do; torch ops
release the GIL, so threads run in parallel.

What it does not: no hierarchical softmax, no phrases, no fastText subwords, no resuming of a run.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from ..tokenization.corpus import iter_text_lines
from .vectors import Vectors


@dataclass
class Word2VecConfig:
    sg: bool = True  # skip-gram (True) or CBOW (False)
    dim: int = 100  # gensim's vector_size default
    window: int = 5  # the largest context distance; each centre draws 1..window
    negative: int = 5  # noise words per positive (2013b: 5-20 for small data, 2-5 for large)
    ns_exponent: float = 0.75  # noise distribution unigram^0.75 (2013b sec. 2.2)
    sample: float = 1e-3  # subsampling threshold (gensim's default; 2013b used 1e-5 on billions of words)
    min_count: int = 5  # rarer words are dropped before training (gensim's default)
    alpha: float = 0.025  # start learning rate (gensim's default for SG and CBOW)
    min_alpha: float = 0.0001  # the learning rate at the end
    epochs: int = 5
    workers: int = 2  # Hogwild threads
    batch_words: int = 10_000  # words per job (gensim's batch_words)
    batch_pairs: int = 256  # (input, target) pairs (SG) or windows (CBOW) per vectorised update
    seed: int = 1


@dataclass
class Vocab:
    words: list[str]
    counts: np.ndarray  # (V,) int64, descending
    index: dict[str, int]


class CorpusError(ValueError):
    """An unusable training corpus: the message names the files."""


def read_sentences(files: Sequence[str | Path], lowercase: bool = False) -> list[list[str]]:
    """One sentence per line, tokens split on whitespace (gensim's LineSentence); blank lines skipped.
    A line that is not UTF-8 raises `TokenizerFileError` naming the file, line and column
    (`iter_text_lines`, the one reader of training text)."""
    out: list[list[str]] = []
    for line in iter_text_lines(files):
        toks = (line.lower() if lowercase else line).split()
        if toks:
            out.append(toks)
    return out


def build_vocab(sentences: Iterable[list[str]], min_count: int, source: str = "the corpus") -> Vocab:
    counts = Counter()
    for s in sentences:
        counts.update(s)
    if not counts:
        raise CorpusError(f"{source}: empty corpus (no words)")
    kept = [(w, c) for w, c in counts.items() if c >= min_count]  # Counter keeps first-seen order
    order = np.lexsort((-np.arange(len(kept)), -np.array([c for _, c in kept], dtype=np.int64)))
    kept = [kept[i] for i in order]  # count descending; ties: the later-seen word first (gensim's order)
    if not kept:
        raise CorpusError(f"{source}: no word occurs min_count={min_count} times "
                          f"({len(counts)} distinct words, the most frequent {counts.most_common(1)[0][1]} times)")
    words = [w for w, _ in kept]
    return Vocab(words, np.array([c for _, c in kept], dtype=np.int64), {w: i for i, w in enumerate(words)})


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """P(keep w) = (sqrt(c_w / t) + 1) * t / c_w, capped at 1; t = sample * total (gensim, the C tool)."""
    if sample <= 0:
        return np.ones(len(counts))
    t = sample * counts.sum()
    p = (np.sqrt(counts / t) + 1) * (t / counts)
    return np.minimum(p, 1.0)


def noise_table(counts: np.ndarray, exponent: float, size: int = 10_000_000) -> torch.Tensor:
    """A table of word ids where word w fills a share c_w^exponent / sum c^exponent of the slots
    (the C tool's unigram table): a uniform slot is a draw from the noise distribution."""
    p = counts.astype(np.float64) ** exponent
    edges = np.round(np.cumsum(p) / p.sum() * size).astype(np.int64)  # (V,) end slot of each word
    slots = np.diff(edges, prepend=0)  # (V,) slots per word
    return torch.from_numpy(np.repeat(np.arange(len(counts), dtype=np.int64), slots))


def learning_rate(alpha: float, min_alpha: float, progress: float) -> float:
    """Linear decay from alpha (progress 0) to min_alpha (progress 1, all epochs' words done)."""
    return alpha - (alpha - min_alpha) * min(max(progress, 0.0), 1.0)


def encode(sentences: list[list[str]], vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """All in-vocabulary tokens as one id array and the sentence number of each (words out of the
    vocabulary are dropped before windows are formed, as gensim does)."""
    ids, sids = [], []
    for k, s in enumerate(sentences):
        x = [vocab.index[w] for w in s if w in vocab.index]
        ids.extend(x)
        sids.extend([k] * len(x))
    return np.array(ids, dtype=np.int64), np.array(sids, dtype=np.int64)


def sg_pairs(ids: np.ndarray, sids: np.ndarray, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Skip-gram (input, target) pairs: for each centre t with its drawn window b in 1..window, every
    context word c within b positions in the same sentence gives (c, t)."""
    n = len(ids)
    b = window - rng.integers(0, window, n)  # (n,) in 1..window, gensim's reduced windows
    inp, tgt = [], []
    for o in range(1, window + 1):
        same = sids[:-o] == sids[o:] if o < n else np.zeros(0, bool)
        fwd = np.nonzero(same & (b[:-o] >= o))[0]  # centre i, context i + o
        bwd = np.nonzero(same & (b[o:] >= o))[0]  # centre i + o, context i
        inp += [ids[fwd + o], ids[bwd]]
        tgt += [ids[fwd], ids[bwd + o]]
    return np.concatenate(inp), np.concatenate(tgt)


def cbow_windows(ids: np.ndarray, sids: np.ndarray, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CBOW rows: (contexts (N, 2*window) padded with -1, target (N,)); centres without context dropped."""
    n = len(ids)
    b = window - rng.integers(0, window, n)
    ctx = np.full((n, 2 * window), -1, dtype=np.int64)  # (N, 2W)
    for o in range(1, window + 1):
        if o >= n:
            break
        same = sids[:-o] == sids[o:]
        right = same & (b[:-o] >= o)  # centre i sees i + o
        left = same & (b[o:] >= o)  # centre i + o sees i
        ctx[:-o, window + o - 1] = np.where(right, ids[o:], -1)
        ctx[o:, window - o] = np.where(left, ids[:-o], -1)
    has = (ctx >= 0).any(1)
    return ctx[has], ids[has]


def _neg_grad(h: torch.Tensor, w_out: torch.Tensor, rows: torch.Tensor, skip: torch.Tensor, lr: float
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative sampling for hidden states h (B, D) against rows (B, 1+K) of w_out: the target, then
    K noise words (`skip` (B, K) marks noise words equal to the target: gensim skips them).
    Returns the updates of those rows (B*(1+K), D) and of h (B, D)."""
    B, D = h.shape
    o = w_out.index_select(0, rows.view(-1)).view(B, -1, D)  # (B, 1+K, D)
    f = torch.linalg.vecdot(o, h.unsqueeze(1))  # (B, 1+K) scores v'_w . h
    g = torch.sigmoid(f).neg_()
    g[:, 0] += 1.0  # label 1 for the target, 0 for the noise words
    g.mul_(lr)  # g = (label - sigmoid(f)) * lr: 2013b eq. 4, an SGD step on log sigma(+-v'.h)
    g[:, 1:].masked_fill_(skip, 0.0)
    dh = torch.bmm(g.unsqueeze(1), o).view(B, D)  # (B, D)
    dout = (g.unsqueeze(2) * h.unsqueeze(1)).view(-1, D)  # (B*(1+K), D)
    return dout, dh


class Word2Vec:
    """Train with `Word2Vec(config).train(sentences)`; the vectors are `.vectors()` (input vectors)."""

    def __init__(self, config: Word2VecConfig | None = None) -> None:
        self.config = config or Word2VecConfig()
        c = self.config
        if c.window < 1 or c.dim < 1 or c.negative < 1 or c.epochs < 1 or c.workers < 1:
            raise ValueError(f"window, dim, negative, epochs and workers must be >= 1: {c}")
        self.vocab: Vocab | None = None
        self.w_in: torch.Tensor | None = None
        self.w_out: torch.Tensor | None = None
        self.words_per_second = 0.0

    def train(self, sentences: list[list[str]], source: str = "the corpus",
              progress: Callable[[int], None] | None = None) -> "Word2Vec":
        """`progress(n)` is called with the number of raw words of each finished job."""
        c = self.config
        vocab = self.vocab = build_vocab(sentences, c.min_count, source)
        if len(vocab.words) < 2:
            raise CorpusError(f"{source}: the vocabulary ({len(vocab.words)} word with count >= "
                              f"min_count={c.min_count}) is too small: a window needs 2 distinct words")
        ids, sids = encode(sentences, vocab)
        if not np.any(sids[1:] == sids[:-1]):
            raise CorpusError(f"{source}: no sentence has 2 in-vocabulary words, so no window (size "
                              f"{c.window}) holds a context word; lower min_count={c.min_count} or add text")
        V, D = len(vocab.words), c.dim
        gen = torch.Generator().manual_seed(c.seed)
        self.w_in = (torch.rand(V, D, generator=gen) - 0.5) / D  # gensim's init
        self.w_out = torch.zeros(V, D)
        table = noise_table(vocab.counts, c.ns_exponent)
        keep = keep_probabilities(vocab.counts, c.sample)
        total = len(ids) * c.epochs
        bounds = list(range(0, len(ids), c.batch_words)) + [len(ids)]
        jobs: queue.Queue = queue.Queue()
        done_words = [0]
        lock = threading.Lock()
        errors: list[BaseException] = []
        for e in range(c.epochs):
            for j in range(len(bounds) - 1):
                jobs.put((e, j, bounds[j], bounds[j + 1]))
        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)  # ops on a few hundred rows: intra-op threads only cost; the parallelism is the Hogwild threads
        start = time.perf_counter()

        def worker() -> None:
            try:
                while True:
                    try:
                        e, j, a, b = jobs.get_nowait()
                    except queue.Empty:
                        return
                    rng = np.random.default_rng([c.seed, e, j])
                    with lock:
                        progress_frac = done_words[0] / total
                    lr = learning_rate(c.alpha, c.min_alpha, progress_frac)
                    self._job(ids[a:b], sids[a:b], keep, table, rng, lr)
                    with lock:
                        done_words[0] += b - a
                    if progress is not None:
                        progress(b - a)
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)

        try:
            if c.workers == 1:
                worker()
            else:
                threads = [threading.Thread(target=worker, daemon=True) for _ in range(c.workers)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
        finally:
            torch.set_num_threads(threads_before)
        if errors:
            raise errors[0]
        self.words_per_second = total / max(time.perf_counter() - start, 1e-9)
        return self

    def _job(self, ids: np.ndarray, sids: np.ndarray, keep: np.ndarray, table: torch.Tensor,
             rng: np.random.Generator, lr: float) -> None:
        c = self.config
        kept = rng.random(len(ids)) < keep[ids]  # subsampling, redrawn every epoch
        ids, sids = ids[kept], sids[kept]
        if len(ids) < 2:
            return
        w_in, w_out = self.w_in, self.w_out
        assert w_in is not None and w_out is not None
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        if c.sg:
            inp, tgt = sg_pairs(ids, sids, c.window, rng)
            perm = torch.from_numpy(rng.permutation(len(inp)))
            inputs, targets = torch.from_numpy(inp)[perm], torch.from_numpy(tgt)[perm]
        else:
            ctx, tgt = cbow_windows(ids, sids, c.window, rng)
            perm = torch.from_numpy(rng.permutation(len(tgt)))
            inputs, targets = torch.from_numpy(ctx)[perm], torch.from_numpy(tgt)[perm]  # (N, 2W), (N,)
        n = len(targets)
        noise = table.index_select(0, torch.randint(len(table), (n * c.negative,), generator=g))
        rows = torch.cat([targets.unsqueeze(1), noise.view(n, c.negative)], 1)  # (N, 1+K) the job's output rows
        skip = rows[:, 1:] == targets.unsqueeze(1)  # (N, K)
        for s in range(0, n, c.batch_pairs):
            e = s + c.batch_pairs
            if c.sg:
                x = inputs[s:e]  # (B,) the context words' input vectors predict the centre word
                dout, dh = _neg_grad(w_in.index_select(0, x), w_out, rows[s:e], skip[s:e], lr)
                w_out.index_add_(0, rows[s:e].view(-1), dout)
                w_in.index_add_(0, x, dh)
            else:
                cx = inputs[s:e]  # (B, 2W), -1 = no word
                mask = cx >= 0
                flat = cx[mask]  # the context words, row after row
                n_ctx = mask.sum(1)  # (B,)
                offsets = torch.cumsum(n_ctx, 0) - n_ctx
                h = F.embedding_bag(flat, w_in, offsets, mode="mean")  # (B, D) context mean (cbow_mean=1)
                dout, dh = _neg_grad(h, w_out, rows[s:e], skip[s:e], lr)
                w_out.index_add_(0, rows[s:e].view(-1), dout)
                w_in.index_add_(0, flat, dh.repeat_interleave(n_ctx, 0))  # each context word: all of dh

    def vectors(self) -> Vectors:
        if self.vocab is None or self.w_in is None:
            raise RuntimeError("train the model first")
        return Vectors(list(self.vocab.words), self.w_in.numpy().copy(), [int(x) for x in self.vocab.counts])


def train_word2vec(sentences: list[list[str]], config: Word2VecConfig | None = None,
                   source: str = "the corpus", progress: Callable[[int], None] | None = None) -> Vectors:
    return Word2Vec(config).train(sentences, source, progress).vectors()
