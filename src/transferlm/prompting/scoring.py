"""Verbalizer scoring: log P(label tokens | prompt) for every label, from one pass over the prompt.

For a prompt x (ids p_1..p_n) and a label whose verbalizer is the tokens c_1..c_m,

    score(label) = sum_j log P(c_j | p_1..p_n, c_1..c_{j-1})        (or / m, length-normalised)

The prompt is shared by every label, so it runs through the Decoder ONCE (its keys and values kept
in a `KVCache`); the last prompt position gives every label's first token. Labels with more than one
token then continue from that cache together: their tokens c_1..c_{m-1} form one right-padded batch
(B = number of such labels) over the cached prompt, whose logits give c_2..c_m. Labels that are all
one token (BBC's " business", " sport", ...) need nothing beyond the prompt pass.

A prompt may itself continue a cached prefix (`past`): few-shot demonstrations shared by every test
example are run once and each example's own tokens are added to a copy of that cache.

`score_labels_full` is the readable reference: one full forward pass per label over prompt + label,
what the fast path must equal (tests compare both with transformers).

What this file does not do: build prompts (templates.py), calibrate (calibration.py) or tokenise.

Notation: B batch, T time, V vocab, L labels, m label length.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..models.layers import KVCache


def copy_cache(cache: KVCache) -> KVCache:
    """A cache that can grow without touching `cache` (KVCache.update replaces, never writes in place)."""
    out = KVCache()
    out.keys, out.values, out.cross = list(cache.keys), list(cache.values), dict(cache.cross)
    return out


def expand_cache(cache: KVCache, batch: int) -> KVCache:
    """The one-row `cache` seen as `batch` identical rows (a view: nothing is copied here)."""
    out = KVCache()
    out.keys = [k.expand(batch, -1, -1, -1) for k in cache.keys]  # (1, KV, S, hs) -> (B, KV, S, hs)
    out.values = [v.expand(batch, -1, -1, -1) for v in cache.values]
    return out


def check_labels(label_ids: Sequence[Sequence[int]], names: Sequence[str] | None = None) -> None:
    for i, ids in enumerate(label_ids):
        if len(ids) == 0:
            name = names[i] if names is not None else f"label {i}"
            raise ValueError(f"{name}: the verbalizer is empty after tokenization, so it has no token to score; "
                             f"give the label a verbalizer with at least one token")


def _reduce(logp: Tensor, lengths: Tensor, length_normalize: bool) -> Tensor:
    """Per-token log-probs (L, m_max) padded with 0 -> per-label score (L,)."""
    total = logp.sum(-1)
    return total / lengths.to(total.dtype) if length_normalize else total


@torch.no_grad()
def score_labels(model, prompt_ids: Sequence[int], label_ids: Sequence[Sequence[int]], past: KVCache | None = None,
                 length_normalize: bool = False) -> Tensor:
    """log P(label | [past +] prompt) for each label: (L,) float32, from one pass over the prompt.

    prompt_ids: the new tokens (at least one); past: a cache of tokens before them (left untouched).
    """
    check_labels(label_ids)
    if len(prompt_ids) == 0:
        raise ValueError("the prompt is empty: there is no position to predict the label from")
    dev = next(model.parameters()).device
    cache = copy_cache(past) if past is not None else KVCache()
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=dev)  # (1, T)
    out = model(ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    first = out.logits[0, -1].float().log_softmax(-1)  # (V,): log P(c_1 | prompt) for every label
    L, m_max = len(label_ids), max(len(c) for c in label_ids)
    logp = torch.zeros(L, m_max, device=dev)  # (L, m_max), 0 where a label has no token
    logp[:, 0] = first[torch.tensor([c[0] for c in label_ids], device=dev)]
    long = [i for i, c in enumerate(label_ids) if len(c) > 1]
    if long:
        # Labels of 2+ tokens continue together from the shared cache: feed c_1..c_{m-1}, right-padded.
        T = max(len(label_ids[i]) for i in long) - 1
        inp = torch.zeros(len(long), T, dtype=torch.long, device=dev)  # (B, T), pad id 0 (masked out)
        tgt = torch.zeros(len(long), T, dtype=torch.long, device=dev)  # (B, T) the token each position predicts
        keep = torch.zeros(len(long), T, dtype=torch.bool, device=dev)  # (B, T) real positions
        for r, i in enumerate(long):
            c = label_ids[i]
            inp[r, :len(c) - 1] = torch.tensor(c[:-1])
            tgt[r, :len(c) - 1] = torch.tensor(c[1:])
            keep[r, :len(c) - 1] = True
        S = cache.seq_length()
        mask = torch.cat([torch.ones(len(long), S, dtype=torch.long, device=dev), keep.long()], dim=1)  # (B, S + T)
        # Right padding: real label tokens come first, so no padded key ever precedes a real query.
        logits = model(inp, attention_mask=mask, past_key_values=expand_cache(cache, len(long))).logits  # (B, T, V)
        lp = logits.float().log_softmax(-1).gather(-1, tgt[..., None])[..., 0]  # (B, T)
        logp[torch.tensor(long, device=dev), 1:T + 1] = lp.masked_fill(~keep, 0.0)
    lengths = torch.tensor([len(c) for c in label_ids], device=dev)
    return _reduce(logp, lengths, length_normalize).cpu()


@torch.no_grad()
def score_labels_batch(model, prompts: Sequence[Sequence[int]], label_ids: Sequence[Sequence[int]],
                       past: KVCache | None = None, length_normalize: bool = False) -> Tensor:
    """`score_labels` of N prompts that continue the same cache `past`: (N, L) float32.

    Where every verbalizer is one token (BBC's topics), the N prompts run as ONE left-padded batch
    over `past` seen N times (a view, nothing copied): the padding is masked out and the position
    ids count real tokens only (the Decoder's rule), so each row equals its own pass; only the last
    position's logits are computed. A batch of short prompts keeps the CPU's matrix units busier
    than N passes of one. Labels of 2+ tokens fall back to one `score_labels` per prompt.
    """
    check_labels(label_ids)
    if any(len(p) == 0 for p in prompts):
        raise ValueError("a prompt is empty: there is no position to predict the label from")
    if not prompts:
        return torch.zeros(0, len(label_ids))
    if any(len(c) > 1 for c in label_ids) or len(prompts) == 1:
        return torch.stack([score_labels(model, p, label_ids, past, length_normalize) for p in prompts])
    dev = next(model.parameters()).device
    N, T = len(prompts), max(len(p) for p in prompts)
    S = past.seq_length() if past is not None else 0
    ids = torch.zeros(N, T, dtype=torch.long, device=dev)  # (N, T) left-padded, pad id 0 (masked out)
    keep = torch.zeros(N, T, dtype=torch.long, device=dev)  # (N, T) 1 at real tokens
    for r, p in enumerate(prompts):
        ids[r, T - len(p):] = torch.tensor(list(p))
        keep[r, T - len(p):] = 1
    mask = torch.cat([torch.ones(N, S, dtype=torch.long, device=dev), keep], dim=1)  # (N, S + T)
    cache = expand_cache(past, N) if past is not None else KVCache()
    out = model(ids, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
    last = out.logits[:, -1].float().log_softmax(-1)  # (N, V): the last position is real in every row
    return last[:, torch.tensor([c[0] for c in label_ids], device=dev)].cpu()  # (N, L)


@torch.no_grad()
def score_labels_full(model, prompt_ids: Sequence[int], label_ids: Sequence[Sequence[int]],
                      length_normalize: bool = False) -> Tensor:
    """The reference: one full forward pass over prompt + label for each label, (L,) float32.

    `model(ids)` may be ours or a transformers model (anything returning `.logits`).
    """
    check_labels(label_ids)
    scores = []
    n = len(prompt_ids)
    dev = next(model.parameters()).device
    for c in label_ids:
        ids = torch.tensor([list(prompt_ids) + list(c)], dtype=torch.long, device=dev)  # (1, n + m)
        logits = model(ids).logits[0, n - 1:-1].float()  # (m, V): the positions that predict c
        lp = logits.log_softmax(-1).gather(-1, torch.tensor(list(c), device=dev)[:, None])[:, 0]  # (m,)
        scores.append(lp.mean() if length_normalize else lp.sum())
    return torch.stack(scores).cpu()


@torch.no_grad()
def prefill(model, ids: Sequence[int], past: KVCache | None = None) -> KVCache:
    """Run `ids` once and return the cache (continuing `past`, which is left untouched)."""
    cache = copy_cache(past) if past is not None else KVCache()
    if len(ids):
        dev = next(model.parameters()).device
        model(torch.tensor([list(ids)], dtype=torch.long, device=dev), past_key_values=cache, use_cache=True,
              logits_to_keep=1)
    return cache
