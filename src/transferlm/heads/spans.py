"""Span classification over all spans up to a maximum width (nested and overlapping entities).

Every span [i, j) of at most `max_width` words is represented as (Lee et al. 2017, sec. 4, with
separate start / end projections)

    g_ij = [s_i; e_{j-1}; p_ij],   s_i = FFNN_start(h_i),   e_j = FFNN_end(h_j),

where p_ij pools h_i..h_{j-1}: their mean, or Lee et al.'s head-finding self-attention
(alpha_t = w_a . FFNN_a(h_t), a = softmax over the span, p = sum_t a_t h_t). A scorer FFNN maps
g_ij to K + 1 logits: index 0 is NULL (not an entity), index k + 1 is label id k. Decoding keeps
every span whose best class is not NULL, or, with a calibrated `threshold`, every span whose best
non-NULL probability reaches it; spans may nest and overlap.

Spans use the data format's convention: (start, end) with end EXCLUSIVE, in word positions (pool
subwords into words first, e.g. with tagging.word_scores-style first-subword gathering).

What it does not: no span pruning by a mention score (all spans up to max_width are scored), no
width embedding, no coreference.
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data.collate import IGNORE_INDEX

NULL = 0  # the "no entity" class; label id k is class k + 1


@functools.lru_cache(maxsize=64)
def enumerate_spans(num_words: int, max_width: int) -> tuple[tuple[int, int], ...]:
    """All (start, end) with end exclusive, 1 <= end - start <= max_width, by start then width.
    There are sum_{w=1}^{min(L, n)} (n - w + 1) of them."""
    if max_width < 1:
        raise ValueError("max_width must be >= 1")
    return tuple((i, j) for i in range(num_words)
                 for j in range(i + 1, min(i + max_width, num_words) + 1))


def _ffnn(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(d_hidden, d_out))


class SpanClassifier(nn.Module):
    def __init__(self, hidden_size: int, num_labels: int, max_width: int = 8,
                 ffnn_size: int = 150,  # Lee et al. 2017 sec. 9: FFNNs of 150 units
                 pooling: str = "mean", dropout: float = 0.2):  # Lee et al. use 0.2 on FFNNs
        super().__init__()
        if pooling not in ("mean", "attention"):
            raise ValueError(f"pooling must be mean or attention, not {pooling!r}")
        self.num_labels, self.max_width, self.pooling = num_labels, max_width, pooling
        self.start_ffnn = nn.Sequential(nn.Linear(hidden_size, ffnn_size), nn.ReLU(), nn.Dropout(dropout))
        self.end_ffnn = nn.Sequential(nn.Linear(hidden_size, ffnn_size), nn.ReLU(), nn.Dropout(dropout))
        if pooling == "attention":
            self.attn = _ffnn(hidden_size, ffnn_size, 1, dropout)  # alpha_t = w_a . FFNN_a(h_t)
        self.scorer = _ffnn(2 * ffnn_size + hidden_size, ffnn_size, num_labels + 1, dropout)

    def span_index(self, num_words: int, device: torch.device | None = None) -> Tensor:
        """(S, 2) start / end (exclusive) of the spans scored for a padded length num_words."""
        return torch.tensor(enumerate_spans(num_words, self.max_width), dtype=torch.long,
                            device=device).view(-1, 2)  # (S, 2)

    def span_mask(self, mask: Tensor) -> Tensor:
        """(B, W) word mask -> (B, S) mask of spans that end inside each row's words."""
        idx = self.span_index(mask.shape[1], mask.device)
        return idx[:, 1].unsqueeze(0) <= mask.long().sum(1, keepdim=True)

    def _pool(self, hidden: Tensor, idx: Tensor) -> Tensor:
        B, W, C = hidden.shape
        start, end = idx[:, 0], idx[:, 1]  # (S,)
        if self.pooling == "mean":
            cs = F.pad(hidden.cumsum(1), (0, 0, 1, 0))  # (B, W+1, C), cs[:, k] = sum of h_<k
            width = (end - start).to(hidden.dtype).view(1, -1, 1)  # (1, S, 1)
            return (cs[:, end] - cs[:, start]) / width  # (B, S, C)
        L = self.max_width
        pos = start.unsqueeze(1) + torch.arange(L, device=hidden.device)  # (S, L)
        inside = pos < end.unsqueeze(1)  # (S, L)
        pos = pos.clamp(max=W - 1)
        a = self.attn(hidden).squeeze(-1)  # (B, W)
        a = a[:, pos].masked_fill(~inside, float("-inf")).softmax(-1)  # (B, S, L)
        return torch.einsum("bsl,bslc->bsc", a, hidden[:, pos])  # (B, S, C)

    def forward(self, hidden: Tensor, mask: Tensor | None = None) -> Tensor:
        """Word states (B, W, C) -> span logits (B, S, K+1) for the spans of `span_index(W)`.
        Spans past a row's length get logits too; `span_mask(mask)` says which are real."""
        idx = self.span_index(hidden.shape[1], hidden.device)  # (S, 2)
        s = self.start_ffnn(hidden)[:, idx[:, 0]]  # (B, S, F)
        e = self.end_ffnn(hidden)[:, idx[:, 1] - 1]  # (B, S, F)
        g = torch.cat([s, e, self._pool(hidden, idx)], dim=-1)  # (B, S, 2F + C)
        return self.scorer(g)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy over the real spans; targets (B, S) from `span_targets` (-100 = padding)."""
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]),  # (B*S, K+1)
                               targets.reshape(-1), ignore_index=IGNORE_INDEX)  # (B*S,)

    def span_targets(self, gold: Sequence[Sequence[tuple[int, int, int]]], lengths: Sequence[int],
                     num_words: int | None = None) -> tuple[Tensor, int]:
        """(B, S) class targets from gold (start, end, label_id) per row, and the number of gold
        spans wider than max_width (they cannot be predicted; count them as misses in evaluation).

        Unlabelled real spans are NULL (0), spans past a row's length -100. Two labels on the
        same span cannot both be a softmax target: that raises.
        """
        W = num_words if num_words is not None else max(lengths)
        spans = enumerate_spans(W, self.max_width)
        where = {sp: k for k, sp in enumerate(spans)}
        out = torch.full((len(gold), len(spans)), IGNORE_INDEX, dtype=torch.long)
        too_wide = 0
        for b, (row, n) in enumerate(zip(gold, lengths)):
            if n > W:
                raise ValueError(f"row {b} has {n} words but the batch is padded to {W}")
            for k, (i, j) in enumerate(spans):
                if j <= n:
                    out[b, k] = NULL
            for i, j, lab in row:
                if not (0 <= i < j <= n):
                    raise ValueError(f"row {b}: span [{i}, {j}) is outside its {n} words")
                if not 0 <= lab < self.num_labels:
                    raise ValueError(f"row {b}: label id {lab} not in [0, {self.num_labels})")
                if j - i > self.max_width:
                    too_wide += 1
                    continue
                k = where[(i, j)]
                if out[b, k] not in (NULL, lab + 1):
                    raise ValueError(f"row {b}: span [{i}, {j}) has two labels "
                                     f"({int(out[b, k]) - 1} and {lab}); a softmax takes one")
                out[b, k] = lab + 1
        return out, too_wide

    @torch.no_grad()
    def decode(self, logits: Tensor, mask: Tensor, threshold: float | None = None,
               flat: bool = False) -> list[list[tuple[int, int, int, float]]]:
        """Predicted (start, end, label_id, probability) per row, nested / overlapping allowed.

        threshold None: a span is predicted when its argmax class is not NULL. A float: when its
        best non-NULL probability is >= threshold (see `calibrate_threshold`).
        flat=True keeps, greedily by probability, only spans that overlap no kept span.
        """
        idx = self.span_index(mask.shape[1], logits.device).tolist()
        if len(idx) != logits.shape[1]:
            raise ValueError(f"logits hold {logits.shape[1]} spans but a mask of {mask.shape[1]} "
                             f"words gives {len(idx)}")
        probs = logits.softmax(-1)  # (B, S, K+1)
        best_p, best = probs[..., 1:].max(-1)  # (B, S)
        keep = (best_p >= threshold) if threshold is not None else (probs.argmax(-1) != NULL)
        keep &= self.span_mask(mask)
        out = []
        for b in range(logits.shape[0]):
            ks = keep[b].nonzero().flatten().tolist()
            row = [(idx[k][0], idx[k][1], int(best[b, k]), float(best_p[b, k])) for k in ks]
            if flat:
                row = _greedy_flat(row)
            out.append(sorted(row))
        return out


def _greedy_flat(spans: list[tuple[int, int, int, float]]) -> list[tuple[int, int, int, float]]:
    kept: list[tuple[int, int, int, float]] = []
    for sp in sorted(spans, key=lambda s: -s[3]):
        if all(sp[1] <= k[0] or k[1] <= sp[0] for k in kept):
            kept.append(sp)
    return kept


def calibrate_threshold(scores: Sequence[float], correct: Sequence[bool], num_gold: int) -> tuple[float, float]:
    """The threshold on the best non-NULL probability that maximises micro F1 on held-out data.

    scores[k]: the best non-NULL probability of candidate span k; correct[k]: whether its best
    non-NULL label is the gold label of that span; num_gold: all gold spans (wider ones too).
    Predicting the spans with score >= t gives tp(t) = #correct among them, F1 = 2 tp / (n + G).
    Returns (threshold, F1 at it); with no correct candidate, (inf, 0.0): predict nothing.
    """
    if len(scores) != len(correct):
        raise ValueError("scores and correct must have the same length")
    order = sorted(range(len(scores)), key=lambda k: -scores[k])
    best_t, best_f, tp = float("inf"), 0.0, 0
    for n, k in enumerate(order, 1):
        tp += bool(correct[k])
        # only cut between distinct scores: all spans with an equal score go in together
        if n < len(order) and scores[order[n]] == scores[k]:
            continue
        f = 2 * tp / (n + num_gold) if n + num_gold else 0.0
        if f > best_f:
            best_t, best_f = float(scores[k]), f
    return best_t, best_f
