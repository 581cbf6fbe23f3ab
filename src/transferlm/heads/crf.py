"""A linear-chain conditional random field over per-position tag scores (Lafferty et al. 2001).

    p(y | x) = exp(score(x, y)) / Z(x),
    score(x, y) = start[y_1] + sum_t E[t, y_t] + sum_{t>1} A[y_{t-1}, y_t] + end[y_T]

where E (B, T, K) are emission scores from a tagging layer and A (K, K) learned transitions
(A[i, j] = score of tag i followed by tag j). The loss is -log p(y|x) = log Z(x) - score(x, y),
with log Z from the forward algorithm in log space; decoding is Viterbi. Padding is handled by a
(B, T) mask whose ones come first in every row (left-aligned sequences).

Transition constraints (e.g. BIO: I-X only after B-X or I-X) are masks added as -inf to the
transition, start and end scores, so an illegal sequence has probability 0 and is never decoded.
Only entity schemes (BIO, BIOES) have them; a plain tag set (part of speech) leaves every
transition to be learned.

What it does not: no subword handling (feed it one position per word; see tagging.py), no
higher-order or semi-Markov CRFs.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def transition_constraints(labels: Sequence[str], scheme: str = "BIO") -> tuple[Tensor, Tensor, Tensor]:
    """Which starts, transitions and ends are legal for a BIO or BIOES tag set.

    scheme: "BIO" or "BIOES" (any case). A plain tag set (part of speech, ...) has no constraints:
    build the CRF with `constraints=None` instead.
    Returns boolean (K,) start, (K, K) transition [from, to] and (K,) end masks.
    BIO: I-X only after B-X or I-X, and not first.
    BIOES: B-X and I-X are followed by I-X or E-X; O, E-* and S-* by O, B-* or S-*; a sequence
    starts with O, B-* or S-* and ends with O, E-* or S-*.
    """
    if str(scheme).upper() not in ("BIO", "BIOES"):
        raise ValueError(f"scheme must be BIO or BIOES, not {scheme!r} (a plain tag set has no "
                         f"transition constraints: CRF(num_tags) without them)")
    scheme = scheme.upper()
    parsed = []
    for lab in labels:
        if lab == "O":
            parsed.append(("O", ""))
        elif len(lab) > 2 and lab[1] == "-" and lab[0] in ("BI" if scheme == "BIO" else "BIES"):
            parsed.append((lab[0], lab[2:]))
        else:
            raise ValueError(f"label {lab!r} is not a {scheme} tag")
    k = len(parsed)
    allowed = torch.zeros(k, k, dtype=torch.bool)
    start = torch.zeros(k, dtype=torch.bool)
    end = torch.zeros(k, dtype=torch.bool)
    for j, (pj, tj) in enumerate(parsed):
        if scheme == "BIO":
            start[j] = pj != "I"
            end[j] = True
        else:
            start[j] = pj in ("O", "B", "S")
            end[j] = pj in ("O", "E", "S")
        for i, (pi, ti) in enumerate(parsed):
            if scheme == "BIO":
                ok = pj != "I" or (pi in ("B", "I") and ti == tj)
            elif pi in ("B", "I"):
                ok = pj in ("I", "E") and ti == tj
            else:
                ok = pj in ("O", "B", "S")
            allowed[i, j] = ok
    return start, allowed, end


def _check_mask(mask: Tensor, shape: torch.Size) -> Tensor:
    if mask.shape != shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match emissions {tuple(shape)}")
    mask = mask.bool()
    if not bool(mask[:, 0].all()):
        raise ValueError("every sequence needs at least one position (mask[:, 0] must be 1)")
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError("the mask must be left-aligned: ones first, then padding")
    return mask


class CRF(nn.Module):
    """Linear-chain CRF with start / end transitions and optional hard constraints."""

    def __init__(self, num_tags: int, constraints: tuple[Tensor, Tensor, Tensor] | None = None,
                 init_range: float = 0.1):  # small uniform init: start near "no preference"
        super().__init__()
        if num_tags < 1:
            raise ValueError("num_tags must be >= 1")
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-init_range, init_range))
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-init_range, init_range))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-init_range, init_range))
        if constraints is None:
            s = torch.ones(num_tags, dtype=torch.bool)
            constraints = (s, torch.ones(num_tags, num_tags, dtype=torch.bool), s)
        s_ok, t_ok, e_ok = constraints
        if s_ok.shape != (num_tags,) or t_ok.shape != (num_tags, num_tags) or e_ok.shape != (num_tags,):
            raise ValueError("constraints must be (K,), (K, K), (K,) boolean masks")
        neg = float("-inf")
        # 0 where allowed, -inf where not; buffers so they move with .to(device) and are saved
        self.register_buffer("start_mask", torch.zeros(num_tags).masked_fill(~s_ok, neg))
        self.register_buffer("trans_mask", torch.zeros(num_tags, num_tags).masked_fill(~t_ok, neg))
        self.register_buffer("end_mask", torch.zeros(num_tags).masked_fill(~e_ok, neg))

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        return (self.start + self.start_mask, self.transitions + self.trans_mask,
                self.end + self.end_mask)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """score(x, y) of the given tag sequences, (B,). Tags at padded positions are ignored."""
        mask = _check_mask(mask, emissions.shape[:2])
        start, trans, end = self._scores()
        B, T, _ = emissions.shape
        tags = tags.masked_fill(~mask, 0)  # padding may hold -100; any valid index will do
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        s = start[tags[:, 0]] + (emit * mask).sum(1)
        if T > 1:
            tr = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
            s = s + tr.masked_fill(~mask[:, 1:], 0.0).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return s + end[last]

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log Z(x), (B,), by the forward algorithm in log space."""
        mask = _check_mask(mask, emissions.shape[:2])
        start, trans, end = self._scores()
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            # alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + A[i, j]) + E[t, j]
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t:t + 1], nxt, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor, reduction: str = "mean") -> Tensor:
        """-log p(y|x): "mean" over sequences, "sum", or "none" (B,)."""
        gold = self.score(emissions, tags, mask)
        if bool(torch.isinf(gold).any()):
            bad = torch.isinf(gold).nonzero().flatten().tolist()
            raise ValueError(f"gold tag sequence(s) {bad} break the CRF's transition constraints "
                             f"(e.g. I-X after O in BIO); fix the data or build the CRF without them")
        out = self.log_partition(emissions, mask) - gold
        if reduction == "mean":
            return out.mean()
        if reduction == "sum":
            return out.sum()
        if reduction == "none":
            return out
        raise ValueError(f"reduction must be mean, sum or none, not {reduction!r}")

    @torch.no_grad()
    def viterbi(self, emissions: Tensor, mask: Tensor) -> tuple[list[list[int]], Tensor]:
        """The highest-scoring tag sequence of each row (length = its mask sum) and its score."""
        mask = _check_mask(mask, emissions.shape[:2])
        start, trans, end = self._scores()
        B, T, K = emissions.shape
        delta = start + emissions[:, 0]  # (B, K)
        back = []
        for t in range(1, T):
            best, arg = (delta.unsqueeze(2) + trans).max(dim=1)  # (B, K): best predecessor of j
            delta = torch.where(mask[:, t:t + 1], best + emissions[:, t], delta)
            back.append(arg)
        final = delta + end
        score, last = final.max(dim=1)
        lengths = mask.sum(1).tolist()
        back_l = torch.stack(back, 1).tolist() if back else []  # (B, T-1, K)
        paths = []
        for b in range(B):
            tag = int(last[b])
            path = [tag]
            for t in range(int(lengths[b]) - 1, 0, -1):
                tag = back_l[b][t - 1][tag]
                path.append(tag)
            paths.append(path[::-1])
        return paths, score
