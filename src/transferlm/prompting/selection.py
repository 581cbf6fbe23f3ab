"""Choosing the k demonstrations of a few-shot prompt: at random, balanced per class, or nearest.

- `select_random`: n examples drawn from the pool without regard to their labels (seeded);
- `select_balanced`: k of each label (the first k of each label in the pool's order, or a seeded
  draw), then shuffled together (seeded) so that no label always sits next to the test input
  (Zhao et al. 2021 sec. 3: the label of the last demonstrations biases the prediction);
- `NearestSelector`: per test input, the n pool examples whose sentence vectors (MiniLM, mean
  pooled, unit length: embeddings/contextual.py) have the highest cosine with the test input's,
  ordered from least to most similar, so the most similar sits next to the test input (Liu et al.
  2022, "What Makes Good In-Context Examples for GPT-3?", sec. 4: the reversed order did best).

What this file does not do: build the prompt text (templates.py) or run the language model.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

Demo = tuple[str, str]  # (text, label)

SELECTORS = ("random", "balanced", "nearest")


def select_random(pool: Sequence[Demo], n: int, seed: int = 0) -> list[Demo]:
    if n > len(pool):
        raise ValueError(f"{n} demonstrations asked for, but the training pool has only {len(pool)} examples")
    return random.Random(seed).sample(list(pool), n)


def select_balanced(pool: Sequence[Demo], per_class: int, labels: Sequence[str], seed: int = 0,
                    first: bool = True) -> list[Demo]:
    """`per_class` of each label; `first`: the first ones in pool order (else a seeded draw); shuffled."""
    rng = random.Random(seed)
    groups: dict[str, list[Demo]] = defaultdict(list)
    for ex in pool:
        groups[ex[1]].append(ex)
    out: list[Demo] = []
    for lab in labels:
        items = groups.get(lab, [])
        if len(items) < per_class:
            raise ValueError(f"label {lab!r} has {len(items)} training examples, fewer than the {per_class} "
                             f"demonstrations per class asked for")
        out += items[:per_class] if first else rng.sample(items, per_class)
    rng.shuffle(out)
    return out


class NearestSelector:
    """kNN demonstrations in a contextual-embedding space (cosine of unit mean-pooled vectors)."""

    def __init__(self, pool: Sequence[Demo], encoder: Any = "minilm", tokenizer: Any = None,
                 max_length: int = 256, batch_size: int = 32, progress: bool = False):
        from ..embeddings.contextual import embed, load

        if isinstance(encoder, str) or tokenizer is None:
            encoder, tokenizer = load(encoder)
        self.pool = list(pool)
        self.encoder, self.tokenizer, self.max_length, self.batch_size = encoder, tokenizer, max_length, batch_size
        # all-MiniLM-L6-v2 is trained on mean pooling + L2 norm, 256 tokens (its sentence_bert_config)
        self._embed = lambda texts, bar=False: embed(texts, encoder, tokenizer, pooling="mean", normalize=True,
                                                     max_length=max_length, batch_size=batch_size, progress=bar)
        self.vectors = self._embed([t for t, _ in self.pool], progress)  # (N, C), unit rows

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(list(texts))

    def select(self, query_vector: np.ndarray, n: int) -> list[Demo]:
        if n > len(self.pool):
            raise ValueError(f"{n} demonstrations asked for, but the training pool has only {len(self.pool)} examples")
        if n == 0:
            return []
        sims = self.vectors @ query_vector  # (N,) cosines
        top = np.argsort(-sims, kind="stable")[:n]  # most similar first; ties keep pool order
        return [self.pool[i] for i in top[::-1]]  # least similar first: the nearest ends next to the test input
