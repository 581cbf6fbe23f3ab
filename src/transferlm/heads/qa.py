"""Extractive question answering: start / end logits, best legal span, no-answer, long contexts.

    start_logits = h W_s,  end_logits = h W_e          (BERT sec. 4.2: S . T_i and E . T_j)
    score(i, j) = start_logits[i] + end_logits[j],  legal if i <= j < i + max_answer_length and
    both i and j are context tokens.

The best span is found in O(T * L) (L = max_answer_length): for every start i only the L ends
i..i+L-1 are scored, as one (B, T, L) tensor, then top-k over it.
No-answer (SQuAD v2.0, BERT sec. 4.3): the null score is start_logits[CLS] + end_logits[CLS];
the model answers "" when null - best_span > threshold (tuned on dev data).
Long contexts come as overlapping windows; `predict_answer` maps each window's candidate token
spans back to character offsets in the context and keeps the best over all windows, with the
smallest null score over the windows (BERT's run_squad rule).

What it does not: no tokenisation or window making (the tokenizer's overflow windows give
offsets and sequence_ids); token offsets are read as character offsets into the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class QAHead(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 2)

    def forward(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, C) -> start logits (B, T), end logits (B, T)."""
        start, end = self.proj(hidden).unbind(-1)
        return start, end

    def loss(self, logits: tuple[Tensor, Tensor], start_positions: Tensor,
             end_positions: Tensor) -> Tensor:
        """Mean of the start and end cross-entropies (BERT). A window without the answer (or an
        impossible question) points both positions at the [CLS] token, index 0."""
        start, end = logits
        return (F.cross_entropy(start, start_positions) + F.cross_entropy(end, end_positions)) / 2

    def decode(self, logits: tuple[Tensor, Tensor], context_mask: Tensor,
               max_answer_length: int = 30, top_k: int = 1) -> list[list[tuple[int, int, float]]]:
        return best_spans(logits[0], logits[1], context_mask, max_answer_length, top_k)


def best_spans(start_logits: Tensor, end_logits: Tensor, context_mask: Tensor,
               max_answer_length: int = 30, top_k: int = 1) -> list[list[tuple[int, int, float]]]:
    """Top-k legal spans per row as (start, end INCLUSIVE, score), best first.

    start_logits, end_logits, context_mask: (B, T). A row with no legal span gives [].
    """
    if max_answer_length < 1:
        raise ValueError("max_answer_length must be >= 1")
    B, T = start_logits.shape
    L = min(max_answer_length, T)
    ctx = context_mask.bool()
    neg = float("-inf")
    s = start_logits.float().masked_fill(~ctx, neg)  # (B, T)
    e = F.pad(end_logits.float().masked_fill(~ctx, neg), (0, L - 1), value=neg)  # (B, T+L-1)
    ends = torch.arange(T, device=s.device).unsqueeze(1) + torch.arange(L, device=s.device)  # (T, L)
    cand = s.unsqueeze(2) + e[:, ends]  # (B, T, L): score of start i, end i + k
    k = min(top_k, T * L)
    vals, flat = cand.view(B, -1).topk(k, dim=1)  # (B, k)
    out = []
    for b in range(B):
        row = []
        for v, f in zip(vals[b].tolist(), flat[b].tolist()):
            if v == neg:
                break
            i, off = divmod(f, L)
            row.append((i, i + off, v))
        out.append(row)
    return out


def answer_token_span(offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None],
                      char_start: int, char_end: int, context_id: int = 1,
                      cls_index: int = 0) -> tuple[int, int]:
    """Training targets: the tokens (inclusive) covering context characters [char_start, char_end)
    in one window, or (cls_index, cls_index) when the answer is not wholly inside the window."""
    ctx = [t for t, s in enumerate(sequence_ids) if s == context_id]
    if not ctx:
        raise ValueError("the window has no context tokens (check context_id)")
    if not (offsets[ctx[0]][0] <= char_start and char_end <= offsets[ctx[-1]][1]):
        return cls_index, cls_index
    start = next(t for t in ctx if offsets[t][1] > char_start)
    end = next(t for t in reversed(ctx) if offsets[t][0] < char_end)
    return start, end


@dataclass
class QAWindow:
    """One window of a (question, context) pair as the model saw it."""

    start_logits: Tensor  # (T,)
    end_logits: Tensor  # (T,)
    offsets: Sequence[tuple[int, int]]  # character offsets of each token into its own text
    sequence_ids: Sequence[int | None]  # 0 question, 1 context, None specials / padding
    context_id: int = 1  # which sequence is the context (1 for question-first encodings)
    cls_index: int = 0


@dataclass
class QAPrediction:
    text: str  # "" for no answer
    char_start: int  # -1 for no answer
    char_end: int  # exclusive
    score: float  # best span score
    null_score: float  # smallest null score over the windows


def predict_answer(windows: Sequence[QAWindow], context: str, max_answer_length: int = 30,
                   n_best: int = 20, null_threshold: float | None = None) -> QAPrediction:
    """The answer to one question from all its windows, in context characters.

    null_threshold None: always answer (SQuAD v1.1). A float: answer "" when
    null_score - best_span_score > null_threshold (SQuAD v2.0).
    """
    if not windows:
        raise ValueError("no windows to predict from")
    best: tuple[float, int, int] | None = None
    null = float("inf")
    for w in windows:
        ctx = torch.tensor([s == w.context_id for s in w.sequence_ids], device=w.start_logits.device)
        if len(w.offsets) != len(ctx) or w.start_logits.shape[0] != len(ctx):
            raise ValueError("a window's logits, offsets and sequence_ids differ in length")
        null = min(null, float(w.start_logits[w.cls_index] + w.end_logits[w.cls_index]))
        for i, j, score in best_spans(w.start_logits.unsqueeze(0), w.end_logits.unsqueeze(0),
                                      ctx.unsqueeze(0), max_answer_length, n_best)[0]:
            a, b = w.offsets[i][0], w.offsets[j][1]
            if b <= a:
                continue
            if best is None or score > best[0]:
                best = (score, a, b)
    if best is None:
        return QAPrediction("", -1, -1, float("-inf"), null)
    score, a, b = best
    if null_threshold is not None and null - score > null_threshold:
        return QAPrediction("", -1, -1, score, null)
    return QAPrediction(context[a:b], a, b, score, null)
