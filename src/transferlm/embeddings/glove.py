"""GloVe (Pennington, Socher & Manning 2014, "GloVe: Global Vectors for Word Representation"): word
vectors from a weighted least-squares fit to the log co-occurrence counts, in PyTorch.

- Co-occurrence counts X_ij: every pair of words at distance d <= window inside a sentence adds
  1/d to X_ij and X_ji (sec. 4.2: "word pairs that are d words apart contribute 1/d").
- Cost (eq. 8): J = sum_{X_ij > 0} f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2,
  f(x) = (x / x_max)^alpha for x < x_max, else 1 (eq. 9; x_max = 100, alpha = 3/4, sec. 4.2).
- AdaGrad (Duchi et al. 2011) over the nonzero entries in a random order each epoch, initial rate 0.05
  (sec. 4.2), the accumulators starting at 1 as in the released glove.c; init uniform(-0.5, 0.5) / dim.
- The vectors saved are W + W~ (sec. 4.2: "we choose to use the sum W + W~ as our word vectors").

Vectorised: a block of `batch_pairs` nonzero entries is one gathered forward, one closed-form
gradient and one `index_add_` per table (a mini-batch version of glove.c's per-entry Hogwild updates).

What it does not: no out-of-core co-occurrence shuffling (glove.c's `shuffle`): the counts of the
vocabulary's words are held in memory, which suits corpora of millions of words, not billions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .vectors import Vectors
from .word2vec import CorpusError, build_vocab, encode


@dataclass
class GloVeConfig:
    dim: int = 100
    window: int = 10  # symmetric context window (sec. 4.2: "ten words to the left and ten to the right")
    x_max: float = 100.0  # f's cutoff (sec. 4.2)
    alpha: float = 0.75  # f's exponent (sec. 4.2: 3/4 works better than 1)
    lr: float = 0.05  # AdaGrad's initial rate (sec. 4.2)
    epochs: int = 25  # sec. 4.2: 50 iterations for vectors under 300 dims, 100 otherwise; 25 here (small corpora)
    min_count: int = 5
    batch_pairs: int = 512  # nonzero entries per vectorised update
    seed: int = 1


def cooccurrence(ids: np.ndarray, sids: np.ndarray, vocab_size: int, window: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric co-occurrence counts with 1/distance weighting: (rows i, cols j, X_ij) of the
    nonzero entries, i-major order."""
    keys: np.ndarray = np.zeros(0, np.int64)
    vals: np.ndarray = np.zeros(0, np.float64)
    n = len(ids)
    for d in range(1, window + 1):
        if d >= n:
            break
        same = np.nonzero(sids[:-d] == sids[d:])[0]
        a, b = ids[same], ids[same + d]
        k = np.concatenate([a * vocab_size + b, b * vocab_size + a])  # both directions
        keys = np.concatenate([keys, k])
        vals = np.concatenate([vals, np.full(len(k), 1.0 / d)])
        keys, inv = np.unique(keys, return_inverse=True)  # merge as we go (memory stays ~ nonzeros)
        vals = np.bincount(inv, weights=vals)
    return keys // vocab_size, keys % vocab_size, vals


def weighting(x: torch.Tensor, x_max: float, alpha: float) -> torch.Tensor:
    """f(x) = (x / x_max)^alpha below x_max, 1 above (eq. 9)."""
    return torch.clamp(x / x_max, max=1.0) ** alpha


class GloVe:
    def __init__(self, config: GloVeConfig | None = None) -> None:
        self.config = config or GloVeConfig()
        self.words: list[str] = []
        self.counts: list[int] = []
        self.losses: list[float] = []  # mean weighted squared error per entry, per epoch
        self.words_per_second = 0.0

    def train(self, sentences: list[list[str]], source: str = "the corpus",
              progress: Callable[[int], None] | None = None,
              on_total: Callable[[int], None] | None = None) -> "GloVe":
        """`progress(n)` is called with n nonzero entries done after each block; `on_total(n)` once
        the counts are known, with the number of entries all epochs will visit."""
        c = self.config
        vocab = build_vocab(sentences, c.min_count, source)
        if len(vocab.words) < 2:
            raise CorpusError(f"{source}: the vocabulary ({len(vocab.words)} word with count >= "
                              f"min_count={c.min_count}) is too small: a window needs 2 distinct words")
        ids, sids = encode(sentences, vocab)
        rows, cols, x = cooccurrence(ids, sids, len(vocab.words), c.window)
        if len(x) == 0:
            raise CorpusError(f"{source}: no two in-vocabulary words share a sentence within the window "
                              f"({c.window}); lower min_count={c.min_count} or add text")
        self.words, self.counts = list(vocab.words), [int(k) for k in vocab.counts]
        if on_total is not None:
            on_total(len(x) * c.epochs)
        V, D = len(vocab.words), c.dim
        gen = torch.Generator().manual_seed(c.seed)
        W = (torch.rand(V, D, generator=gen) - 0.5) / D  # glove.c's init
        Wc = (torch.rand(V, D, generator=gen) - 0.5) / D
        b = (torch.rand(V, generator=gen) - 0.5) / D
        bc = (torch.rand(V, generator=gen) - 0.5) / D
        GW, GWc, Gb, Gbc = (torch.ones_like(t) for t in (W, Wc, b, bc))  # AdaGrad accumulators (glove.c: 1)
        ri, ci = torch.from_numpy(rows), torch.from_numpy(cols)
        logx = torch.from_numpy(np.log(x)).float()
        fx = weighting(torch.from_numpy(x).float(), c.x_max, c.alpha)
        start = time.perf_counter()
        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)  # ops on a few hundred rows: intra-op threads only cost
        try:
            self._fit(c, ri, ci, logx, fx, (W, Wc, b, bc), (GW, GWc, Gb, Gbc), gen, progress)
        finally:
            torch.set_num_threads(threads_before)
        self.entries = len(x)
        self.words_per_second = len(ids) * c.epochs / max(time.perf_counter() - start, 1e-9)
        self.W, self.Wc = W, Wc
        return self

    def _fit(self, c: GloVeConfig, ri: torch.Tensor, ci: torch.Tensor, logx: torch.Tensor, fx: torch.Tensor,
             params: tuple[torch.Tensor, ...], accum: tuple[torch.Tensor, ...], gen: torch.Generator,
             progress: Callable[[int], None] | None) -> None:
        W, Wc, b, bc = params
        GW, GWc, Gb, Gbc = accum
        n = len(logx)
        for _ in range(c.epochs):
            order = torch.randperm(n, generator=gen)
            total = 0.0
            for s in range(0, n, c.batch_pairs):
                k = order[s: s + c.batch_pairs]
                i, j = ri[k], ci[k]
                wi, wj = W[i], Wc[j]  # (B, D)
                diff = (wi * wj).sum(1) + b[i] + bc[j] - logx[k]  # (B,)
                fdiff = fx[k] * diff  # dJ/d(dot) / 2
                total += float((fdiff * diff).sum())
                gi = fdiff.unsqueeze(1) * wj  # (B, D)
                gj = fdiff.unsqueeze(1) * wi
                # AdaGrad: step with the accumulated squares so far, then add this gradient's squares
                W.index_add_(0, i, -c.lr * gi / GW[i].sqrt())
                Wc.index_add_(0, j, -c.lr * gj / GWc[j].sqrt())
                b.index_add_(0, i, -c.lr * fdiff / Gb[i].sqrt())
                bc.index_add_(0, j, -c.lr * fdiff / Gbc[j].sqrt())
                GW.index_add_(0, i, gi * gi)
                GWc.index_add_(0, j, gj * gj)
                Gb.index_add_(0, i, fdiff * fdiff)
                Gbc.index_add_(0, j, fdiff * fdiff)
                if progress is not None:
                    progress(len(k))
            self.losses.append(total / n)

    def vectors(self) -> Vectors:
        """W + W~ (sec. 4.2)."""
        return Vectors(self.words, (self.W + self.Wc).numpy(), self.counts)


def train_glove(sentences: list[list[str]], config: GloVeConfig | None = None, source: str = "the corpus",
                progress: Callable[[int], None] | None = None) -> Vectors:
    return GloVe(config).train(sentences, source, progress).vectors()
