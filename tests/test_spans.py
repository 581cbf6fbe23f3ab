"""Span enumeration, representations, targets, nested decoding and threshold calibration."""

import random
from pathlib import Path

import pytest
import torch

from transferlm.data.formats import LabelSet, read_spans
from transferlm.heads.spans import NULL, SpanClassifier, calibrate_threshold, enumerate_spans
from transferlm.training.metrics import span_prf


pytestmark = pytest.mark.usefixtures("one_thread")


FIX = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("n,L", [(1, 1), (5, 1), (5, 3), (5, 5), (5, 9), (12, 4)])
def test_enumeration_count_and_order(n, L):
    spans = enumerate_spans(n, L)
    assert len(spans) == sum(n - w + 1 for w in range(1, min(L, n) + 1))
    assert len(set(spans)) == len(spans)
    assert all(0 <= i < j <= n and j - i <= L for i, j in spans)
    assert list(spans) == sorted(spans)
    brute = {(i, j) for i in range(n) for j in range(n + 1) if 0 < j - i <= L}
    assert set(spans) == brute


def test_representation_mean_and_attention():
    torch.manual_seed(0)
    h = torch.randn(2, 6, 8)
    for pooling in ("mean", "attention"):
        head = SpanClassifier(8, 3, max_width=3, ffnn_size=5, pooling=pooling, dropout=0.0)
        idx = head.span_index(6)
        pooled = head._pool(h, idx)
        for k, (i, j) in enumerate(idx.tolist()):
            if pooling == "mean":
                ref = h[:, i:j].mean(1)
            else:
                a = head.attn(h[:, i:j]).squeeze(-1).softmax(-1)  # (B, width)
                ref = (a.unsqueeze(-1) * h[:, i:j]).sum(1)
            assert torch.allclose(pooled[:, k], ref, atol=1e-6), (pooling, i, j)
        logits = head(h)
        assert logits.shape == (2, len(idx), 4)
        # [s_i; e_j; g_ij]: the logits of a span change only with its own words
        h2 = h.clone()
        h2[:, 5] += 1.0
        changed = (head(h2) - logits).abs().sum((0, 2)) > 0
        assert changed.tolist() == [j == 6 for _, j in idx.tolist()]


def test_targets_and_nested_fixture_training():
    data = read_spans(FIX / "nested_spans.jsonl")
    labels = LabelSet.from_data(s.label for ex in data for s in ex.spans)
    gold = [[(s.start, s.end, labels.id(s.label)) for s in ex.spans] for ex in data]
    lengths = [len(ex.tokens) for ex in data]
    head = SpanClassifier(16, len(labels), max_width=4, ffnn_size=32, dropout=0.0)
    targets, too_wide = head.span_targets(gold, lengths)
    assert too_wide == 1  # FAC [1, 6) is 5 words wide
    spans = enumerate_spans(max(lengths), 4)
    k = spans.index((3, 5))
    assert targets[0, k] == labels.id("LOC") + 1
    assert targets[1, spans.index((0, 2))] == labels.id("DNA") + 1
    assert (targets[2] == NULL).sum() == len(enumerate_spans(2, 4))  # real spans of row 2 are NULL
    assert (targets[2] == -100).sum() == len(spans) - len(enumerate_spans(2, 4))
    mask = torch.arange(max(lengths)).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    assert head.span_mask(mask).sum().item() == sum(len(enumerate_spans(n, 4)) for n in lengths)
    # memorise the three sentences from per-word random features: nested spans come back
    torch.manual_seed(0)
    feats = torch.randn(3, max(lengths), 16)
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        head.loss(head(feats, mask), targets).backward()
        opt.step()
    pred = head.decode(head(feats, mask), mask)
    got = [[(i, j, labels.label(lab)) for i, j, lab, _ in row] for row in pred]
    want = [sorted((s.start, s.end, s.label) for s in ex.spans if s.end - s.start <= 4) for ex in data]
    assert got == want
    assert (1, 5, "ORG") in got[0] and (3, 5, "LOC") in got[0]  # nested
    rep = span_prf([[(s.start, s.end, s.label) for s in ex.spans] for ex in data], got)
    assert rep.micro.precision == 1.0 and rep.micro.recall == pytest.approx(5 / 6)


def test_decode_nested_overlapping_threshold_and_flat():
    head = SpanClassifier(4, 2, max_width=3, dropout=0.0)
    W = 4
    spans = enumerate_spans(W, 3)
    logits = torch.zeros(1, len(spans), 3)
    logits[..., NULL] = 5.0
    want = {(0, 3): (1, 8.0), (1, 2): (0, 7.0), (2, 4): (0, 6.0)}  # nested and overlapping
    for (i, j), (lab, v) in want.items():
        logits[0, spans.index((i, j)), lab + 1] = v
    logits[0, spans.index((3, 4)), 2] = 4.9  # just below NULL
    mask = torch.ones(1, W, dtype=torch.bool)
    out = head.decode(logits, mask)[0]
    assert [(i, j, lab) for i, j, lab, _ in out] == [(0, 3, 1), (1, 2, 0), (2, 4, 0)]
    # a low threshold admits the near miss; a high one keeps only the surest span
    low = head.decode(logits, mask, threshold=0.4)[0]
    assert (3, 4, 1) in [(i, j, lab) for i, j, lab, _ in low]
    high = head.decode(logits, mask, threshold=0.95)[0]
    assert [(i, j) for i, j, _, _ in high] == [(0, 3)]
    flat = head.decode(logits, mask, flat=True)[0]
    assert [(i, j) for i, j, _, _ in flat] == [(0, 3)]
    # padding: a row of 2 words predicts nothing past word 2
    short = torch.tensor([[1, 1, 0, 0]], dtype=torch.bool)
    assert all(j <= 2 for _, j, _, _ in head.decode(logits, short)[0])


def test_calibrate_threshold_equals_brute_force():
    rng = random.Random(0)
    for _ in range(30):
        n = rng.randint(1, 25)
        scores = [round(rng.random(), 1) for _ in range(n)]  # ties on purpose
        correct = [rng.random() < 0.5 for _ in range(n)]
        n_gold = sum(correct) + rng.randint(0, 5)
        t, f = calibrate_threshold(scores, correct, n_gold)

        def f1_at(th):
            pred = [k for k in range(n) if scores[k] >= th]
            tp = sum(correct[k] for k in pred)
            return 2 * tp / (len(pred) + n_gold) if pred or n_gold else 0.0

        best = max([f1_at(s) for s in scores] + [0.0])
        assert f == pytest.approx(best)
        if best > 0:
            assert f1_at(t) == pytest.approx(best)


def test_targets_errors():
    head = SpanClassifier(4, 2, max_width=3)
    with pytest.raises(ValueError, match="outside"):
        head.span_targets([[(1, 5, 0)]], [4])
    with pytest.raises(ValueError, match="two labels"):
        head.span_targets([[(0, 2, 0), (0, 2, 1)]], [4])
