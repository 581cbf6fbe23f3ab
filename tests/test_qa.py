"""QA: best span against brute force, targets in windows, merging windows back to characters."""

import re
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from transferlm.data.formats import read_squad
from transferlm.heads.qa import QAHead, QAWindow, answer_token_span, best_spans, predict_answer
from transferlm.training.metrics import squad_scores

FIX = Path(__file__).parent / "fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")


def _brute(s, e, ctx, L):
    cands = [(float(s[i] + e[j]), i, j) for i in range(len(s)) for j in range(len(s))
             if ctx[i] and ctx[j] and i <= j < i + L]
    return sorted(cands, key=lambda c: -c[0])


def test_best_span_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    for trial in range(40):
        B, T = 3, int(torch.randint(1, 14, (1,), generator=g))
        L = int(torch.randint(1, 8, (1,), generator=g))
        s = torch.randn(B, T, generator=g)
        e = torch.randn(B, T, generator=g)
        ctx = torch.rand(B, T, generator=g) < 0.7
        got = best_spans(s, e, ctx, max_answer_length=L, top_k=5)
        for b in range(B):
            ref = _brute(s[b], e[b], ctx[b], L)
            assert [round(v, 5) for _, _, v in got[b]] == [round(v, 5) for v, _, _ in ref[:5]]
            if ref:
                assert (got[b][0][0], got[b][0][1]) == (ref[0][1], ref[0][2])
                assert all(ctx[b, i] and ctx[b, j] and i <= j < i + L for i, j, _ in got[b])
            else:
                assert got[b] == []


def test_head_loss_is_mean_of_start_and_end_ce():
    torch.manual_seed(0)
    head = QAHead(8)
    h = torch.randn(2, 5, 8)
    start, end = head(h)
    sp, ep = torch.tensor([1, 0]), torch.tensor([3, 0])
    ref = (F.cross_entropy(start, sp) + F.cross_entropy(end, ep)) / 2
    assert head.loss((start, end), sp, ep).item() == pytest.approx(ref.item())
    assert len(head.decode((start, end), torch.ones(2, 5, dtype=torch.bool), 3)[0]) == 1


def _words(text):
    """A whitespace-and-punctuation 'tokenizer' with character offsets."""
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


def _windows(question, context, max_ctx, stride):
    """[CLS] question [SEP] context-window [SEP] encodings, windows overlapping by `stride`."""
    q, c = _words(question), _words(context)
    out = []
    start = 0
    while True:
        piece = c[start:start + max_ctx]
        offsets = [(0, 0)] + [(a, b) for _, a, b in q] + [(0, 0)] + [(a, b) for _, a, b in piece] + [(0, 0)]
        seq = [None] + [0] * len(q) + [None] + [1] * len(piece) + [None]
        out.append((offsets, seq))
        if start + max_ctx >= len(c):
            return out
        start += max_ctx - stride


def test_windows_targets_and_merge_recover_squad_answers():
    """Logits that point at the training targets of each window give back the gold answer text,
    whichever window holds it, through character offsets."""
    examples = read_squad(FIX / "squad_v2.json")
    preds, gold = {}, {}
    for ex in examples:
        wins = _windows(ex.question, ex.context, max_ctx=9, stride=3)
        assert len(wins) > 2  # the answer has to be found across windows
        gold[ex.id] = [a.text for a in ex.answers]
        windows = []
        for offsets, seq in wins:
            T = len(offsets)
            s, e = torch.zeros(T), torch.zeros(T)
            if ex.answers:
                a = ex.answers[0]
                i, j = answer_token_span(offsets, seq, a.start, a.start + len(a.text))
                if i == 0:
                    s[0] = e[0] = 5.0  # this window says "not here"
                else:
                    s[i] = e[j] = 10.0
                    assert ex.context[offsets[i][0]:offsets[j][1]] == a.text
            else:
                s[0] = e[0] = 5.0
            windows.append(QAWindow(s, e, offsets, seq))
        p = predict_answer(windows, ex.context, max_answer_length=10, null_threshold=0.0)
        preds[ex.id] = p.text
        if ex.answers:
            assert (p.char_start, p.text) == (ex.answers[0].start, ex.answers[0].text)
        else:
            assert p.text == "" and p.char_start == -1
    assert squad_scores(preds, gold)["exact"] == 100.0


def test_answer_outside_window_points_at_cls():
    offsets = [(0, 0), (0, 3), (0, 0), (10, 14), (15, 20), (0, 0)]
    seq = [None, 0, None, 1, 1, None]
    assert answer_token_span(offsets, seq, 10, 20) == (3, 4)
    assert answer_token_span(offsets, seq, 15, 18) == (4, 4)  # partial token: the whole token
    assert answer_token_span(offsets, seq, 5, 12) == (0, 0)  # starts before the window
    assert answer_token_span(offsets, seq, 15, 25) == (0, 0)  # ends after it


def test_no_answer_threshold_and_min_null_over_windows():
    context = "alpha beta gamma"
    offsets = [(0, 0), (0, 5), (6, 10), (11, 16), (0, 0)]
    seq = [None, 1, 1, 1, None]
    s1 = torch.tensor([3.0, 0.0, 2.0, 0.0, 0.0])
    e1 = torch.tensor([3.0, 0.0, 0.0, 1.5, 0.0])  # best span "beta gamma" = 3.5, null 6
    s2, e2 = s1.clone(), e1.clone()
    s2[0] = e2[0] = 1.0  # the second window's null score is 2
    w1, w2 = QAWindow(s1, e1, offsets, seq), QAWindow(s2, e2, offsets, seq)
    assert predict_answer([w1], context).text == "beta gamma"  # v1.1: always answer
    assert predict_answer([w1], context, null_threshold=0.0).text == ""  # 6 - 3.5 > 0
    assert predict_answer([w1], context, null_threshold=3.0).text == "beta gamma"
    p = predict_answer([w1, w2], context, null_threshold=0.0)
    assert p.null_score == 2.0 and p.text == "beta gamma"
    assert predict_answer([w1], context, max_answer_length=1).text in ("beta", "gamma")
