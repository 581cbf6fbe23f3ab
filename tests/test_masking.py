"""Masking (objectives/masking.py): rates measured on large samples, invariants, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlm.objectives.masking import (IGNORE_INDEX, MaskingConfig, mask_batch, random_token_weights,
                                           sample_span_lengths, span_length_distribution)

V, MASK, SPECIALS = 1000, 4, [0, 1, 2, 3, 4]  # 0 pad, 1 unk, 2 cls, 3 sep, 4 mask


def _batch(B=512, T=128, seed=0, piece_prob=0.0):
    """Random ids; [CLS] at 0, [SEP] at the end of each row's real length, padding after it.
    word_ids: each token starts a new word with probability 1 - piece_prob."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    pos = torch.arange(T).expand(B, T)
    attn = (pos < lengths[:, None]).long()
    special = torch.zeros(B, T, dtype=torch.long)
    special[:, 0] = 1
    special[torch.arange(B), lengths - 1] = 1
    ids[:, 0] = 2
    ids[torch.arange(B), lengths - 1] = 3
    ids[attn == 0] = 0
    starts = (torch.rand(B, T, generator=g) >= piece_prob).long()
    word_ids = torch.cumsum(starts, 1)
    return ids, attn, special, word_ids


def _mask(strategy, ids, attn, special, word_ids, seed=1, weights=None, **kw):
    cfg = MaskingConfig(strategy=strategy, **kw)
    w = weights if weights is not None else random_token_weights(V, SPECIALS)
    return mask_batch(ids, mask_token_id=MASK, random_weights=w, generator=torch.Generator().manual_seed(seed),
                      config=cfg, special_tokens_mask=special, attention_mask=attn, word_ids=word_ids)


@pytest.fixture(scope="module")
def batch():
    return _batch()


@pytest.mark.parametrize("strategy", ["token", "whole_word", "span"])
def test_rate_and_never_special_or_padding(batch, strategy):
    ids, attn, special, word_ids = _batch(piece_prob=0.3) if strategy != "token" else batch
    out = _mask(strategy, ids, attn, special, word_ids)
    chosen = out["labels"] != IGNORE_INDEX
    maskable = (attn == 1) & (special == 0)
    assert not (chosen & ~maskable).any(), "a special or padding position was chosen"
    assert (out["input_ids"][~chosen] == ids[~chosen]).all(), "a position that was not chosen changed"
    assert (out["labels"][chosen] == ids[chosen]).all(), "labels must be the original tokens"
    rate = chosen.sum().item() / maskable.sum().item()
    # token masking takes round(15%) exactly; whole words / spans stop at a word that would overshoot
    lo = 0.149 if strategy == "token" else 0.135
    assert lo <= rate <= 0.151, rate


def test_80_10_10_and_unigram_random_tokens(batch):
    ids, attn, special, word_ids = batch
    counts = np.zeros(V)
    counts[5:15] = np.arange(1, 11)  # a skewed unigram over 10 ids
    w = random_token_weights(V, SPECIALS, counts=counts)
    out = _mask("token", ids, attn, special, word_ids, weights=w)
    chosen = out["labels"] != IGNORE_INDEX
    new, old = out["input_ids"][chosen], ids[chosen]
    n = chosen.sum().item()  # ~7,300 positions: the standard error of a 10% share is 0.35%
    is_mask = new == MASK
    is_same = new == old
    is_random = ~is_mask & ~is_same
    assert abs(is_mask.float().mean().item() - 0.8) < 0.015
    # a random draw can equal the original token (here only when the original is in 5..14)
    assert abs(is_random.float().mean().item() - 0.1) < 0.012
    assert abs(is_same.float().mean().item() - 0.1) < 0.012
    drawn = new[is_random].numpy()
    assert drawn.min() >= 5 and drawn.max() < 15, "random tokens come from the unigram support only"
    freq = np.bincount(drawn, minlength=15)[5:15] / len(drawn)
    np.testing.assert_allclose(freq, np.arange(1, 11) / 55, atol=0.03)
    assert n > 5000


def test_uniform_random_tokens_skip_specials(batch):
    ids, attn, special, word_ids = batch
    out = _mask("token", ids, attn, special, word_ids, random_distribution="uniform")
    chosen = out["labels"] != IGNORE_INDEX
    new = out["input_ids"][chosen]
    drawn = new[(new != MASK) & (new != ids[chosen])]
    assert len(drawn) > 500
    assert not torch.isin(drawn, torch.tensor(SPECIALS)).any()
    assert drawn.float().mean().item() == pytest.approx((5 + V - 1) / 2, rel=0.05)  # uniform over 5..999


def _words_of(word_ids_row, ok_row):
    words = {}
    for t in np.flatnonzero(ok_row):
        words.setdefault(int(word_ids_row[t]), []).append(t)
    return words


def test_whole_words_never_split():
    ids, attn, special, word_ids = _batch(B=256, piece_prob=0.5)  # long words: many pieces each
    out = _mask("whole_word", ids, attn, special, word_ids)
    chosen = (out["labels"] != IGNORE_INDEX).numpy()
    ok = ((attn == 1) & (special == 0)).numpy()
    n_words = 0
    for b in range(ids.shape[0]):
        for w, pos in _words_of(word_ids[b].numpy(), ok[b]).items():
            flags = chosen[b, pos]
            assert flags.all() or not flags.any(), f"row {b}: word {w} split: {flags}"
            n_words += bool(flags.all())
    assert n_words > 1000


def test_span_length_distribution():
    probs = span_length_distribution(0.2, 10)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[1] / probs[0] == pytest.approx(0.8)
    assert (np.arange(1, 11) * probs).sum() == pytest.approx(3.797, abs=1e-3)  # SpanBERT sec. 3.1: mean 3.8
    draws = sample_span_lengths(200_000, torch.Generator().manual_seed(0)).numpy()
    assert draws.min() == 1 and draws.max() == 10
    np.testing.assert_allclose(np.bincount(draws, minlength=11)[1:] / len(draws), probs, atol=0.004)


def test_span_masking_spans():
    # one token per word, long rows: measured span lengths follow the clipped geometric, except that
    # a span stops early at a word already masked or at the 15% budget (a small downward bias)
    ids, attn, special, word_ids = _batch(B=16, T=2000)
    attn[:] = 1
    special[:] = 0
    special[:, 0] = special[:, -1] = 1
    out = _mask("span", ids, attn, special, torch.arange(2000).expand(16, 2000).clone())
    chosen = out["labels"] != IGNORE_INDEX
    start, end = out["span_start"], out["span_end"]
    lengths, decisions = [], []
    for b in range(16):
        pos = torch.nonzero(chosen[b]).flatten().tolist()
        spans = {}
        for t in pos:
            spans.setdefault((start[b, t].item(), end[b, t].item()), []).append(t)
        for (s, e), members in spans.items():
            assert members == list(range(s, e + 1)), "a span must be contiguous and cover start..end"
            lengths.append(e - s + 1)
            new, old = out["input_ids"][b, s:e + 1], ids[b, s:e + 1]
            kind = {"mask" if x == MASK else "same" if x == y else "random" for x, y in zip(new.tolist(), old.tolist())}
            # SpanBERT sec. 3.1: one 80/10/10 decision per span (a random draw can hit the original
            # token by chance, so a "random" span may contain an unchanged token)
            assert kind == {"mask"} or "mask" not in kind, f"one decision per span, got {kind}"
            decisions.append("mask" if "mask" in kind else "random" if "random" in kind else "same")
    lengths = np.array(lengths)
    assert lengths.max() <= 10
    assert len(lengths) > 1000
    assert abs(lengths.mean() - 3.797) < 0.35, lengths.mean()
    assert abs(np.mean([d == "mask" for d in decisions]) - 0.8) < 0.05


def test_span_masking_whole_words_and_boundaries():
    ids, attn, special, word_ids = _batch(B=128, piece_prob=0.4)
    out = _mask("span", ids, attn, special, word_ids)
    chosen = (out["labels"] != IGNORE_INDEX).numpy()
    ok = ((attn == 1) & (special == 0)).numpy()
    for b in range(ids.shape[0]):
        for pos in _words_of(word_ids[b].numpy(), ok[b]).values():
            assert chosen[b, pos].all() or not chosen[b, pos].any()
    s, e = out["span_start"][torch.from_numpy(chosen)], out["span_end"][torch.from_numpy(chosen)]
    assert (s >= 1).all()  # [CLS] at 0 is always a left boundary
    # the right boundary is inside the row (at worst [SEP]), never padding
    lens = attn.sum(1, keepdim=True).expand_as(attn)[torch.from_numpy(chosen)]
    assert (e + 1 <= lens - 1).all()


@pytest.mark.parametrize("strategy", ["token", "whole_word", "span"])
def test_reproducible_with_generator(batch, strategy):
    ids, attn, special, word_ids = batch
    a = _mask(strategy, ids[:32], attn[:32], special[:32], word_ids[:32], seed=5)
    b = _mask(strategy, ids[:32], attn[:32], special[:32], word_ids[:32], seed=5)
    c = _mask(strategy, ids[:32], attn[:32], special[:32], word_ids[:32], seed=6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["labels"], c["labels"])


def test_bad_config_and_missing_word_ids(batch):
    with pytest.raises(ValueError, match="strategy"):
        MaskingConfig(strategy="words")
    with pytest.raises(ValueError, match="word_ids"):
        ids, attn, special, _ = batch
        mask_batch(ids, mask_token_id=MASK, random_weights=random_token_weights(V, SPECIALS),
                   generator=torch.Generator(), config=MaskingConfig(strategy="span"), special_tokens_mask=special)
    with pytest.raises(ValueError, match="shape"):
        random_token_weights(V, SPECIALS, counts=np.ones(V + 1))
