"""Sequence tagging heads and the word <-> subword bookkeeping they need.

What this file does:
- `word_scores`: subword scores -> word scores (first subword, or mean / max over the subwords);
  `pool_words` does it for a batch of hidden states (word-level input for a CRF or span head);
- `window_starts` / `merge_windows`: long inputs in overlapping windows; each word keeps the
  prediction of the window where it has the most context (the largest distance to the window's
  edges, BERT's `_check_is_max_context` rule);
- `pack_labelled`: left-pack the positions that carry a label (first subwords) so a CRF sees one
  position per word;
- `TokenTagger`: per-token softmax, y_t = softmax(W h_t) (dropout first), cross-entropy loss,
  argmax decoding;
- `CRFTagger`: the same linear layer as emissions of a linear-chain CRF (crf.py), Viterbi
  decoding, BIO / BIOES transition constraints where the tag scheme has them (a plain tag set,
  e.g. part of speech, gets a CRF with every transition allowed).

The subword label alignment (`align_labels`) lives in data/finetune_collate.py, where batches
are built. What it does not: no tokenisation (it only reads word_ids lists), no encoder; heads never touch a
config object.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data.collate import IGNORE_INDEX
from ..data.finetune_collate import word_id_list
from .crf import CRF, transition_constraints


def word_scores(scores: Tensor, word_ids: Sequence[int | None], reduce: str = "first",
                num_words: int | None = None) -> Tensor:
    """(T, K) subword scores of one sequence -> (W, K) word scores.

    reduce: "first" takes the first subword's row; "mean" / "max" aggregate all the word's
    subwords (pass log-probabilities or probabilities for "mean", as you prefer). A word with no
    subword in this sequence (possible in a window) gets a row of NaN.
    """
    word_ids = word_id_list(word_ids)
    if scores.dim() != 2 or scores.shape[0] != len(word_ids):
        raise ValueError(f"scores must be (T, K) with T = len(word_ids) = {len(word_ids)}, "
                         f"got {tuple(scores.shape)}")
    ids = [w for w in word_ids if w is not None]
    W = num_words if num_words is not None else (max(ids) + 1 if ids else 0)
    K = scores.shape[1]
    dev = scores.device
    pos = torch.tensor([t for t, w in enumerate(word_ids) if w is not None], dtype=torch.long,
                       device=dev)
    idx = torch.tensor(ids, dtype=torch.long, device=dev)
    if reduce == "first":
        out = scores.new_full((W, K), float("nan"))
        firsts: dict[int, int] = {}
        for t, w in enumerate(word_ids):
            if w is not None:
                firsts.setdefault(w, t)
        if firsts:
            out[torch.tensor(list(firsts), device=dev)] = scores[torch.tensor(list(firsts.values()),
                                                                              device=dev)]
        return out
    if reduce in ("mean", "max"):
        index = idx.unsqueeze(1).expand(-1, K)  # (N, K)
        out = scores.new_zeros((W, K)).scatter_reduce(
            0, index, scores[pos], reduce="mean" if reduce == "mean" else "amax", include_self=False)
        seen = torch.zeros(W, dtype=torch.bool, device=dev)
        seen[idx] = True
        return out.masked_fill(~seen.unsqueeze(1), float("nan"))
    raise ValueError(f"reduce must be first, mean or max, not {reduce!r}")


def pool_words(hidden: Tensor, word_ids: Sequence[Sequence[int | None]], reduce: str = "first"
               ) -> tuple[Tensor, Tensor]:
    """Batched subword states -> word states, for word-level heads (CRF, spans).

    hidden (B, T, C) and one word_ids list per row -> words (B, W, C) left-aligned, zero-padded,
    and the word mask (B, W); W = the most words in a row. Differentiable ("first" indexes,
    "mean" / "max" use scatter_reduce).
    """
    rows = [word_scores(hidden[b], ids, reduce) for b, ids in enumerate(word_ids)]  # (W_b, C) each
    W = max((r.shape[0] for r in rows), default=0)
    out = hidden.new_zeros(len(rows), max(W, 1), hidden.shape[-1])  # (B, W, C)
    mask = torch.zeros(len(rows), max(W, 1), dtype=torch.bool, device=hidden.device)
    for b, r in enumerate(rows):
        if bool(torch.isnan(r).any()):
            raise ValueError(f"row {b}: some word index has no subword (word_ids skip a word)")
        out[b, :r.shape[0]] = r
        mask[b, :r.shape[0]] = True
    return out, mask


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of `window` positions covering `length`, consecutive windows
    overlapping by `stride` positions (the overlap, as in the tokenizers' `stride` argument)."""
    if window < 1 or not 0 <= stride < window:
        raise ValueError(f"need window >= 1 and 0 <= stride < window, got {window}, {stride}")
    starts = [0]
    while starts[-1] + window < length:
        starts.append(starts[-1] + window - stride)
    return starts


def merge_windows(windows: Sequence[tuple[Sequence[int | None], Tensor]], num_words: int,
                  reduce: str = "first") -> Tensor:
    """(W, K) word scores of a long input from overlapping windows.

    windows: (word_ids, scores (T, K)) per window; word_ids hold GLOBAL word indices (as the
    tokenizer's overflow windows do). A word's context in a window is min(subwords before its
    first subword, subwords after its last subword), counting only real tokens; the window with
    the largest context wins, the earlier window on ties.
    """
    if not windows:
        raise ValueError("no windows to merge")
    K = windows[0][1].shape[1]
    out = windows[0][1].new_full((num_words, K), float("nan"))
    best = [-1] * num_words
    for word_ids, scores in windows:
        word_ids = word_id_list(word_ids)
        ws = word_scores(scores, word_ids, reduce, num_words)
        real = [w for w in word_ids if w is not None]
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for k, w in enumerate(real):
            first.setdefault(w, k)
            last[w] = k
        for w in first:
            context = min(first[w], len(real) - 1 - last[w])
            if context > best[w]:
                best[w] = context
                out[w] = ws[w]
    missing = [w for w in range(num_words) if best[w] < 0]
    if missing:
        raise ValueError(f"words {missing[:10]} appear in no window")
    return out


def pack_labelled(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Left-pack the labelled positions (label != -100) of each row.

    scores (B, T, K), labels (B, T) -> packed scores (B, N, K), packed labels (B, N) and mask
    (B, N), N = the most labelled positions in a row. With first-subword labels this gives one
    position per word, in order, which is what a CRF needs.
    """
    keep = labels != IGNORE_INDEX  # (B, T)
    n = keep.sum(1)
    N = max(int(n.max()) if n.numel() else 0, 1)
    # stable sort puts kept positions first, in their original order
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :N]  # (B, N)
    mask = torch.arange(N, device=labels.device).unsqueeze(0) < n.unsqueeze(1)  # (B, N)
    packed_scores = scores.gather(1, order.unsqueeze(2).expand(-1, -1, scores.shape[2]))  # (B, N, K)
    packed_labels = labels.gather(1, order).masked_fill(~mask, IGNORE_INDEX)
    return packed_scores, packed_labels, mask


# ----------------------------------------------------------------------------------------------
# heads


class TokenTagger(nn.Module):
    """y_t = softmax(W h_t): independent per-token classification (BERT sec. 4.3, NER)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):  # BERT's 0.1
        super().__init__()
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.proj(self.dropout(hidden))  # (B, T, K)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy over positions whose label is not -100."""
        return F.cross_entropy(logits.reshape(-1, self.num_labels),  # (B*T, K)
                               labels.reshape(-1), ignore_index=IGNORE_INDEX)  # (B*T,)

    def decode(self, logits: Tensor, mask: Tensor | None = None) -> list[list[int]]:
        """Argmax label per position; with a (B, T) mask, only the positions where it is 1."""
        pred = logits.argmax(-1)
        if mask is None:
            return pred.tolist()
        return [row[m].tolist() for row, m in zip(pred, mask.bool())]


class CRFTagger(nn.Module):
    """Linear emissions + a linear-chain CRF (Lample et al. 2016's BiLSTM-CRF output layer).

    Feed word-level positions: `loss` and `decode` left-pack the positions whose label / mask is
    set (first subwords), so subword sequences with -100 on the later subwords work directly.
    labels: the tag strings, needed only for constraints ("bio" or "bioes"; None or "plain":
    every transition allowed, as for part-of-speech tags).
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1,
                 labels: Sequence[str] | None = None, constraints: str | None = None):
        super().__init__()
        self.num_labels = num_labels
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, num_labels)
        cons = None
        if constraints is not None and constraints.lower() != "plain":
            if labels is None or len(labels) != num_labels:
                raise ValueError("constraints need the list of num_labels tag strings")
            cons = transition_constraints(labels, constraints)
        self.crf = CRF(num_labels, cons)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.proj(self.dropout(hidden))  # (B, T, K) emissions

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean -log p(y|x) per sequence over the labelled positions (label != -100)."""
        em, lab, mask = pack_labelled(logits, labels)
        return self.crf.nll(em, lab.masked_fill(~mask, 0), mask)

    def decode(self, logits: Tensor, mask: Tensor) -> list[list[int]]:
        """Viterbi paths over the positions where mask is 1 (e.g. first subwords)."""
        lab = torch.where(mask.bool(), 0, IGNORE_INDEX)
        em, _, m = pack_labelled(logits, lab)
        empty = m.sum(1) == 0
        m = m.clone()
        m[:, 0] = True  # rows without a position decode a dummy one, dropped below
        paths, _ = self.crf.viterbi(em, m)
        return [[] if e else p for p, e in zip(paths, empty.tolist())]
