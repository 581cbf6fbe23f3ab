"""Masking for masked-language-model pretraining: the ONE implementation the package uses.

Three ways to choose the positions to predict, one way to corrupt them:

- token masking (BERT, Devlin et al. 2019 sec. 3.1): 15% of the maskable positions;
- whole-word masking (BERT's later release): whole words (all their word pieces) until 15%;
- span masking (SpanBERT, Joshi et al. 2020 sec. 3.1): contiguous spans of whole words whose
  length in words follows a geometric distribution, until 15% of the tokens are chosen.

A chosen position is then replaced by [MASK] 80% of the time, by a random token 10% of the time,
and left as it is 10% of the time; its label is the original token, and every other position gets
the label -100 (ignored by the losses). Token and whole-word masking decide 80/10/10 per token
(as BERT's `create_pretraining_data.py`); span masking decides once for the whole span (SpanBERT
sec. 3.1). Random tokens are drawn from a weight vector over the vocabulary: the corpus unigram
distribution (`TokenCorpus.unigram()`), or uniform over the non-special tokens.

Works on token-id tensors only: it knows nothing of tokenizers, text or models. Positions that are
special (`special_tokens_mask == 1`) or padding (`attention_mask == 0`) are never chosen. Every
random draw goes through the `torch.Generator` passed in, so a seed gives the same masks.

Does not: mask at corpus-building time (masking is dynamic, per batch, as RoBERTa sec. 4.1), or
pick a masking budget per sequence other than the rate times the number of maskable tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.collate import IGNORE_INDEX  # -100, the label value torch's cross_entropy ignores


@dataclass
class MaskingConfig:
    strategy: str = "token"  # "token" | "whole_word" | "span"
    mlm_probability: float = 0.15  # BERT sec. 3.1: 15% of the WordPiece tokens; SpanBERT keeps 15%
    mask_fraction: float = 0.8  # BERT sec. 3.1 / appendix C.2: 80% [MASK]
    random_fraction: float = 0.1  # 10% random token; the remaining 10% keep the original token
    random_distribution: str = "unigram"  # "unigram" (corpus frequencies) | "uniform"
    span_p: float = 0.2  # SpanBERT sec. 3.1: l ~ Geo(p = 0.2)
    max_span_words: int = 10  # SpanBERT sec. 3.1: l clipped at l_max = 10 (mean 3.8 words)

    def __post_init__(self) -> None:
        if self.strategy not in ("token", "whole_word", "span"):
            raise ValueError(f"masking strategy must be token, whole_word or span, not {self.strategy!r}")
        if self.random_distribution not in ("unigram", "uniform"):
            raise ValueError(f"random_distribution must be unigram or uniform, not {self.random_distribution!r}")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if self.mask_fraction < 0 or self.random_fraction < 0 or self.mask_fraction + self.random_fraction > 1:
            raise ValueError("mask_fraction and random_fraction must be >= 0 and sum to at most 1")
        if not 0.0 < self.span_p <= 1.0 or self.max_span_words < 1:
            raise ValueError("span_p must be in (0, 1] and max_span_words >= 1")


def span_length_distribution(p: float = 0.2, max_len: int = 10) -> np.ndarray:
    """P(l) for l = 1..max_len: Geo(p) truncated at max_len and renormalised.

    SpanBERT sec. 3.1 says the length is "clipped" at 10 and that the mean is 3.8 words; its code
    (`PairWithSpanMaskingScheme`) renormalises the truncated geometric, which is what gives 3.8
    (putting the tail mass on 10 would give a mean of 4.46). We follow the code and the stated mean.
    """
    lens = np.arange(1, max_len + 1)
    probs = p * (1.0 - p) ** (lens - 1)
    return probs / probs.sum()


def sample_span_lengths(n: int, generator: torch.Generator, p: float = 0.2, max_len: int = 10) -> torch.Tensor:
    """n span lengths (in words) drawn from `span_length_distribution`. (n,) long."""
    probs = torch.from_numpy(span_length_distribution(p, max_len))
    return torch.multinomial(probs, n, replacement=True, generator=generator) + 1


def random_token_weights(vocab_size: int, special_ids: list[int] | tuple[int, ...] = (),
                         counts: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """Weights over the vocabulary for the 10% random replacements.

    `counts` (corpus unigram counts, length V) gives the unigram distribution; None gives uniform.
    Special tokens get weight 0 either way (a random [CLS] in the middle of a text teaches nothing).
    """
    if counts is None:
        w = torch.ones(vocab_size, dtype=torch.float64)
    else:
        w = torch.as_tensor(np.asarray(counts), dtype=torch.float64).clone()
        if w.shape != (vocab_size,):
            raise ValueError(f"unigram counts have shape {tuple(w.shape)}, expected ({vocab_size},)")
    for i in special_ids:
        w[i] = 0.0
    if w.sum() <= 0:
        raise ValueError("random-token weights are all zero (no counted non-special token)")
    return (w / w.sum()).float()


def _maskable(input_ids: torch.Tensor, special_tokens_mask: torch.Tensor | None,
              attention_mask: torch.Tensor | None) -> torch.Tensor:
    ok = torch.ones_like(input_ids, dtype=torch.bool)
    if special_tokens_mask is not None:
        ok &= special_tokens_mask == 0
    if attention_mask is not None:
        ok &= attention_mask != 0
    return ok


def _budget(n_maskable: torch.Tensor, rate: float) -> torch.Tensor:
    # BERT's create_pretraining_data.py: max(1, round(len * rate)) predictions per sequence
    # (and none for a sequence with nothing to mask).
    return torch.where(n_maskable > 0, torch.clamp(torch.round(n_maskable * rate), min=1), 0).long()


def select_tokens(maskable: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Token masking: exactly round(rate * n) maskable positions per row, uniformly. (B, T) bool."""
    scores = torch.rand(maskable.shape, generator=generator)
    scores = scores.masked_fill(~maskable, 2.0)  # non-maskable positions sort last
    ranks = scores.argsort(dim=1).argsort(dim=1)  # (B, T) rank of each position in a random order
    return (ranks < _budget(maskable.sum(1), rate)[:, None]) & maskable


def _words(row_word_ids: np.ndarray, row_ok: np.ndarray) -> list[np.ndarray]:
    """Positions of each word of one row, in order; a word is a run of equal word ids."""
    pos = np.flatnonzero(row_ok)
    if pos.size == 0:
        return []
    wid = row_word_ids[pos]
    # a new word starts where the word id changes or the positions are not adjacent
    starts = np.flatnonzero(np.r_[True, (wid[1:] != wid[:-1]) | (np.diff(pos) != 1)])
    return np.split(pos, starts[1:])


def select_whole_words(maskable: torch.Tensor, word_ids: torch.Tensor, rate: float,
                       generator: torch.Generator) -> torch.Tensor:
    """Whole-word masking: words in a random order, a word taken only if it fits in the budget
    (BERT's create_pretraining_data.py skips a word that would overshoot). (B, T) bool."""
    ok, wids = maskable.numpy(), word_ids.numpy()
    budgets = _budget(maskable.sum(1), rate).tolist()
    out = np.zeros(ok.shape, dtype=bool)
    for b in range(ok.shape[0]):
        words = _words(wids[b], ok[b])
        order = torch.randperm(len(words), generator=generator).tolist()
        n = 0
        for w in order:
            if n >= budgets[b]:
                break
            if n + len(words[w]) > budgets[b]:
                continue
            out[b, words[w]] = True
            n += len(words[w])
    return torch.from_numpy(out)


def select_spans(maskable: torch.Tensor, word_ids: torch.Tensor, config: MaskingConfig,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SpanBERT span masking (Joshi et al. 2020 sec. 3.1).

    Repeatedly: draw a span length l (in words) from the truncated geometric, a start word uniformly
    among the words not yet masked, and mask the next l whole words, stopping early at a word that
    is already masked, at the end of the sequence, or at a word that would overshoot the budget of
    round(rate * n) tokens. Spans never overlap.

    Returns (chosen (B,T) bool, span_start (B,T) long, span_end (B,T) long): for a chosen position
    the first and last token index of its span (inclusive), 0 elsewhere. The span-boundary objective
    reads the boundary tokens at span_start - 1 and span_end + 1.
    """
    ok, wids = maskable.numpy(), word_ids.numpy()
    budgets = _budget(maskable.sum(1), config.mlm_probability).tolist()
    chosen = np.zeros(ok.shape, dtype=bool)
    start = np.zeros(ok.shape, dtype=np.int64)
    end = np.zeros(ok.shape, dtype=np.int64)
    for b in range(ok.shape[0]):
        words = _words(wids[b], ok[b])
        taken = np.zeros(len(words), dtype=bool)
        n, budget = 0, budgets[b]
        # Each try masks a word or finds none that fits; 2x the word count bounds the loop.
        for _ in range(2 * len(words) + 10):
            if n >= budget or taken.all():
                break
            span_len = int(sample_span_lengths(1, generator, config.span_p, config.max_span_words))
            free = np.flatnonzero(~taken)
            w0 = int(free[int(torch.randint(len(free), (1,), generator=generator))])
            span_words = []
            for w in range(w0, min(w0 + span_len, len(words))):
                if taken[w] or n + len(words[w]) > budget:
                    break
                # a span is contiguous in the token sequence, not only in word order
                if span_words and words[w][0] != words[span_words[-1]][-1] + 1:
                    break
                span_words.append(w)
                n += len(words[w])
            if not span_words:
                continue
            taken[span_words] = True
            pos = np.concatenate([words[w] for w in span_words])
            chosen[b, pos] = True
            start[b, pos], end[b, pos] = pos[0], pos[-1]
    return torch.from_numpy(chosen), torch.from_numpy(start), torch.from_numpy(end)


def corrupt(input_ids: torch.Tensor, chosen: torch.Tensor, *, mask_token_id: int,
            random_weights: torch.Tensor, config: MaskingConfig, generator: torch.Generator,
            unit: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 80/10/10 replacement of the chosen positions (BERT sec. 3.1), and the labels.

    `unit` (B, T) long, optional: positions with the same unit index share one 80/10/10 decision
    (the span start for SpanBERT); by default each position decides alone.
    Returns (corrupted input_ids, labels with -100 where not chosen).
    """
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    u = torch.rand(input_ids.shape, generator=generator)
    if unit is not None:
        u = u.gather(1, unit)  # every position of a span reads the draw at the span's start
    to_mask = chosen & (u < config.mask_fraction)
    to_random = chosen & (u >= config.mask_fraction) & (u < config.mask_fraction + config.random_fraction)
    out = input_ids.clone()
    out[to_mask] = mask_token_id
    n_random = int(to_random.sum())
    if n_random:
        out[to_random] = torch.multinomial(random_weights, n_random, replacement=True,
                                           generator=generator).to(out.dtype)
    return out, labels


def mask_batch(input_ids: torch.Tensor, *, mask_token_id: int, random_weights: torch.Tensor,
               generator: torch.Generator, config: MaskingConfig | None = None,
               special_tokens_mask: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None,
               word_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Choose and corrupt positions of a (B, T) batch of token ids.

    `word_ids` (B, T) long (any value at special / pad positions) is needed by whole-word and span
    masking. Returns {"input_ids", "labels"} and, for span masking, {"span_start", "span_end"}
    (see `select_spans`).
    """
    config = config or MaskingConfig()
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
    maskable = _maskable(input_ids, special_tokens_mask, attention_mask)
    if config.strategy != "token" and word_ids is None:
        raise ValueError(f"{config.strategy} masking needs word_ids")
    extra: dict[str, torch.Tensor] = {}
    unit = None
    if config.strategy == "token":
        chosen = select_tokens(maskable, config.mlm_probability, generator)
    elif config.strategy == "whole_word":
        chosen = select_whole_words(maskable, word_ids, config.mlm_probability, generator)
    else:
        chosen, start, end = select_spans(maskable, word_ids, config, generator)
        unit = start  # SpanBERT sec. 3.1: one 80/10/10 decision for the whole span
        extra = {"span_start": start, "span_end": end}
    ids, labels = corrupt(input_ids, chosen, mask_token_id=mask_token_id, random_weights=random_weights,
                          config=config, generator=generator, unit=unit)
    return {"input_ids": ids, "labels": labels, **extra}
