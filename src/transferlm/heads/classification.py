"""Sequence classification and regression head (single texts and sentence pairs alike).

    y = softmax(W_C dropout(pool(h)))           (BERT sec. 4.1: W_C over the [CLS] state)

Pooling over the encoder's hidden states h (B, T, C), padding excluded by the attention mask:
- "cls":    h_0, the first token ([CLS]);
- "mean":   the mean of the real tokens;
- "concat": [h_T; maxpool(h); meanpool(h)] (ULMFiT, Howard & Ruder 2018 sec. 3.3), h_T the last
            real token; the projection then reads 3C features;
- "last":   h_T, the last real token (right padding): a causal decoder's only state that has read
            the whole input (GPT-1, Radford et al. 2018 sec. 3.2: W_y h_l^m).
bias=False gives the bias-free projection of transformers' GPT2/LlamaForSequenceClassification
(`score`).
num_labels = 1 makes it a regression head (MSE loss, the raw output is the prediction).
A sentence pair is one sequence `[CLS] A [SEP] B [SEP]` to the encoder, so it uses this same head.

What it does not: no BERT pooler (tanh dense) of its own (pass the encoder's pooler output through
`forward(pooled=...)` if you want it), no multi-label sigmoid head, no config mutation: the
problem type is fixed by num_labels at construction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

POOLINGS = ("cls", "mean", "concat", "last")


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """(B, T, C), (B, T) -> (B, C) mean over the positions where mask is 1."""
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def masked_max(hidden: Tensor, mask: Tensor) -> Tensor:
    """(B, T, C), (B, T) -> (B, C) max over the positions where mask is 1."""
    neg = torch.finfo(hidden.dtype).min
    return hidden.masked_fill(~mask.bool().unsqueeze(-1), neg).max(1).values


def last_token(hidden: Tensor, mask: Tensor) -> Tensor:
    """(B, T, C) -> (B, C): the state of the last position where mask is 1 (right padding)."""
    idx = (mask.long().sum(1) - 1).clamp(min=0)  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]


class ClassificationHead(nn.Module):
    def __init__(self, hidden_size: int, num_labels: int, pooling: str = "cls",
                 dropout: float = 0.1,  # BERT fine-tuning's dropout on the pooled state
                 bias: bool = True):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        if num_labels < 1:
            raise ValueError("num_labels must be >= 1 (1 = regression)")
        self.num_labels = num_labels
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        features = 3 * hidden_size if pooling == "concat" else hidden_size
        self.proj = nn.Linear(features, num_labels, bias=bias)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    def pool(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """(B, T, C) -> (B, C) or (B, 3C) for "concat"."""
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "mean":
            return masked_mean(hidden, attention_mask)
        if self.pooling == "last":
            return last_token(hidden, attention_mask)
        # ULMFiT sec. 3.3: h_c = [h_T; maxpool(H); meanpool(H)]
        return torch.cat([last_token(hidden, attention_mask), masked_max(hidden, attention_mask),
                          masked_mean(hidden, attention_mask)], dim=-1)

    def features(self, hidden: Tensor, attention_mask: Tensor | None = None,
                 pooled: Tensor | None = None) -> Tensor:
        """(B, F): what the linear layer reads (before dropout): `pooled` if given, else pool(hidden)."""
        return pooled if pooled is not None else self.pool(hidden, attention_mask)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None = None,
                pooled: Tensor | None = None) -> Tensor:
        """Logits (B, K), or (B,) predictions for regression. `pooled` (B, C) replaces pooling."""
        out = self.proj(self.dropout(self.features(hidden, attention_mask, pooled)))
        return out.squeeze(-1) if self.is_regression else out  # (B,) or (B, K)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy on class ids, or MSE on float targets for regression."""
        if self.is_regression:
            return F.mse_loss(logits, labels.to(logits.dtype).view_as(logits))
        return F.cross_entropy(logits, labels)

    def decode(self, logits: Tensor) -> Tensor:
        """Class ids (B,), or the predicted values (B,) for regression."""
        return logits if self.is_regression else logits.argmax(-1)

    def probabilities(self, logits: Tensor) -> Tensor:
        if self.is_regression:
            raise ValueError("a regression head has no class probabilities")
        return logits.softmax(-1)
