"""Calibrating label scores: contextual calibration and domain-conditional PMI. The maths, once.

- Contextual calibration (Zhao et al. 2021, "Calibrate Before Use", sec. 5): the prompt with the
  test input replaced by content-free strings ("N/A", "[MASK]", "") gives label probabilities
  p_cf (each normalised over the labels, then averaged, then normalised again); a test example's
  normalised label probabilities p are corrected by W = diag(p_cf)^-1, b = 0:
  q = softmax(W p), i.e. the prediction is argmax_y p_y / p_cf_y.
- Domain-conditional PMI (Holtzman et al. 2021, "Surface Form Competition", sec. 3):
  score(y) = log P(y | prompt) - log P(y | domain premise), where the domain premise is the
  answer cue alone (e.g. "Topic:"): how much the input raised the label above its prior.

Inputs are label log-scores (log P of each label's tokens, summed or length-normalised, from
scoring.py). What this file does not do: run the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

# Zhao et al. 2021 sec. 5: "N/A", "[MASK]" and the empty string, averaged.
CONTENT_FREE = ("N/A", "[MASK]", "")


def label_probs(scores: Tensor) -> Tensor:
    """Label log-scores (..., L) -> probabilities normalised over the labels (..., L)."""
    return scores.float().softmax(-1)


def content_free_probs(cf_scores: Sequence[Tensor] | Tensor) -> Tensor:
    """p_cf (L,): each content-free input's normalised label probabilities, averaged, renormalised."""
    s = torch.stack(list(cf_scores)) if not isinstance(cf_scores, Tensor) else cf_scores  # (N, L)
    if s.dim() != 2:
        raise ValueError(f"content-free scores must be (N inputs, L labels), got shape {tuple(s.shape)}")
    p = label_probs(s).mean(0)  # (L,)
    return p / p.sum()


def contextual_calibrate(scores: Tensor, p_cf: Tensor) -> Tensor:
    """Calibrated label probabilities q = softmax(diag(p_cf)^-1 p) (..., L), p = normalised probs.

    Zhao et al. 2021 eq. (1) with W = diag(p_cf)^-1 and b = 0 (their sec. 5 choice for
    classification). The argmax is that of p / p_cf.
    """
    p = label_probs(scores)
    return (p / p_cf).softmax(-1)


def pmi(scores: Tensor, domain_scores: Tensor) -> Tensor:
    """Domain-conditional PMI (Holtzman et al. 2021 eq. 3): log P(y|x) - log P(y|domain), (..., L)."""
    return scores.float() - domain_scores.float()
