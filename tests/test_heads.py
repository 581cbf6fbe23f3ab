"""Classification and tagging heads, subword alignment and window merging (no encoder needed)."""

import zlib

import pytest
import torch
from torch.nn import functional as F

from transferlm.data import assets
from transferlm.data.formats import LabelSet
from transferlm.heads.classification import ClassificationHead
from transferlm.data.collate import IGNORE_INDEX
from transferlm.data.finetune_collate import align_labels
from transferlm.heads.tagging import (TokenTagger, merge_windows, pack_labelled, pool_words,
                                      window_starts, word_scores)
from transferlm.training.metrics import accuracy, entity_prf


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------- classification


def test_pooling_respects_the_mask():
    torch.manual_seed(0)
    h = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    h_pad = h.clone()
    h_pad[0, 3:] = 1e3  # padding must not leak into any pooling
    for pooling in ("cls", "mean", "concat"):
        head = ClassificationHead(4, 3, pooling=pooling, dropout=0.0)
        assert torch.allclose(head(h, mask), head(h_pad, mask)), pooling
    head = ClassificationHead(4, 3, pooling="concat", dropout=0.0)
    pooled = head.pool(h, mask)
    assert pooled.shape == (2, 12)
    # ULMFiT: [h_T; max; mean], h_T the last real token
    assert torch.equal(pooled[0, :4], h[0, 2])
    assert torch.allclose(pooled[0, 4:8], h[0, :3].max(0).values)
    assert torch.allclose(pooled[0, 8:], h[0, :3].mean(0))
    assert torch.equal(ClassificationHead(4, 3, "cls").pool(h, mask), h[:, 0])


def test_classification_loss_decode_and_regression():
    torch.manual_seed(0)
    h = torch.randn(3, 4, 8)
    head = ClassificationHead(8, 3)
    head.eval()  # dropout off for the equality below
    logits = head(h)
    y = torch.tensor([0, 2, 1])
    assert head.loss(logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item())
    assert head.decode(logits).tolist() == logits.argmax(-1).tolist()
    reg = ClassificationHead(8, 1)
    out = reg(h)
    assert out.shape == (3,)
    t = torch.tensor([0.5, 1.0, 4.0])
    assert reg.loss(out, t).item() == pytest.approx(((out - t) ** 2).mean().item())
    with pytest.raises(ValueError):
        reg.probabilities(out)
    with pytest.raises(ValueError, match="pooling"):
        ClassificationHead(8, 2, pooling="attention")


def test_dropout_comes_first():
    head = ClassificationHead(4, 2, dropout=0.999999)
    head.train()
    h = torch.randn(2, 3, 4)
    # everything dropped: the logits are the bias alone
    assert torch.allclose(head(h), head.proj.bias.expand(2, 2))


def _hashed_words(words, buckets):
    """One-hot hashed word features: a fixed, parameter-free stand-in for an encoder's states."""
    ids = torch.tensor([zlib.crc32(w.lower().encode()) % buckets for w in words], dtype=torch.long)
    return F.one_hot(ids, buckets).float()


def test_classification_head_learns_bbc_topics():
    """Mean pooling over hashed word features of real BBC articles separates the 5 topics."""
    data = assets.bbc_news()[::5]  # 445 articles, every topic kept
    labels = LabelSet.from_data(lab for _, lab in data)
    T, C = 64, 256
    feats = torch.zeros(len(data), T, C)
    mask = torch.zeros(len(data), T, dtype=torch.bool)
    for b, (text, _) in enumerate(data):
        words = [w.strip(".,'\"()") for w in text.split()]
        words = [w for w in words if len(w) >= 4][:T]  # a crude stop-word filter
        feats[b, :len(words)] = _hashed_words(words, C)
        mask[b, :len(words)] = True
    y = torch.tensor([labels.id(lab) for _, lab in data])
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:330], perm[330:]
    f_tr, m_tr = feats[tr], mask[tr]
    torch.manual_seed(0)
    head = ClassificationHead(C, len(labels), pooling="mean", dropout=0.0)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        head.loss(head(f_tr, m_tr), y[tr]).backward()
        opt.step()
    pred = head.decode(head(feats[te], mask[te])).tolist()
    assert accuracy(y[te].tolist(), pred) > 0.45  # chance 0.2; measured 0.61


# -------------------------------------------------------------------------------- subword alignment

def test_align_labels_first_and_all():
    #          [CLS] New  ##ark is   in   New  Jersey [SEP]
    word_ids = [None, 0, 0, 1, 2, 3, 4, None]
    labels = [1, 0, 0, 1, 2]  # B-LOC O O B-LOC I-LOC
    assert align_labels(word_ids, labels) == [-100, 1, -100, 0, 0, 1, 2, -100]
    assert align_labels(word_ids, labels, label_all_subwords=True) == [-100, 1, 1, 0, 0, 1, 2, -100]
    assert align_labels(word_ids, labels, label_all_subwords=True, continuation={1: 2}) == \
        [-100, 1, 2, 0, 0, 1, 2, -100]
    with pytest.raises(ValueError, match="word 5"):
        align_labels([0, 5], labels)
    # the collator's padded rows: a tensor with -1 for "no word"
    assert align_labels(torch.tensor([-1, 0, 0, 1, 2, 3, 4, -1, -1]), labels) == \
        [-100, 1, -100, 0, 0, 1, 2, -100, -100]


def test_word_scores_first_mean_max():
    word_ids = [None, 0, 0, 0, 1, None, 2, 2]
    s = torch.arange(16.0).view(8, 2)
    assert word_scores(s, word_ids, "first").tolist() == [[2, 3], [8, 9], [12, 13]]
    assert word_scores(s, word_ids, "mean").tolist() == [[4, 5], [8, 9], [13, 14]]
    assert word_scores(s, word_ids, "max").tolist() == [[6, 7], [8, 9], [14, 15]]
    assert torch.equal(word_scores(s, torch.tensor([-1, 0, 0, 0, 1, -1, 2, 2]), "mean"),
                       word_scores(s, word_ids, "mean"))
    part = word_scores(s[:5], word_ids[:5], "first", num_words=3)
    assert torch.isnan(part[2]).all()


def _subword_ids(tokens):
    """A made-up, deterministic segmentation: each word has 1 to 3 subwords."""
    return [w for w, tok in enumerate(tokens) for _ in range(1 + len(tok) % 3)]


def test_window_merge_on_wnut_sentence():
    # the longest WNUT tweet, made longer by joining three
    sents = sorted(assets.wnut16(), key=lambda s: -len(s[0]))[:3]
    tokens = [t for toks, _ in sents for t in toks]
    word_ids = _subword_ids(tokens)
    T, K = len(word_ids), 5
    torch.manual_seed(0)
    full = torch.randn(T, K)
    window, stride = 24, 8
    starts = window_starts(T, window, stride)
    assert starts[-1] + window >= T and all(b - a == window - stride for a, b in zip(starts, starts[1:]))
    # windows that reproduce the full run exactly (with [CLS] / [SEP]): merging gives it back
    wins = []
    for a in starts:
        ids = [None] + word_ids[a:a + window] + [None]
        sc = torch.cat([torch.randn(1, K), full[a:a + window], torch.randn(1, K)])
        wins.append((ids, sc))
    for reduce in ("first", "mean", "max"):
        assert torch.allclose(merge_windows(wins, len(tokens), reduce),
                              word_scores(full, word_ids, reduce))
    # windows whose scores say which window they are: each word must come from a window where
    # its context (min distance to the window's edges) is the largest
    tagged = [(ids, torch.full((len(ids), K), float(k))) for k, (ids, _) in enumerate(wins)]
    chosen = merge_windows(tagged, len(tokens))[:, 0].long().tolist()

    def context(k, w):
        real = [x for x in wins[k][0] if x is not None]
        if w not in real:
            return -1
        first = real.index(w)
        last = len(real) - 1 - real[::-1].index(w)
        return min(first, len(real) - 1 - last)

    for w in range(len(tokens)):
        best = max(context(k, w) for k in range(len(wins)))
        assert context(chosen[w], w) == best
    # words near a window boundary are taken from the next window
    assert len(set(chosen)) == len(wins)


# ------------------------------------------------------------------------------------------ taggers

def test_token_tagger_on_wnut_tags():
    sents = assets.wnut16()[:40]
    labels = LabelSet.from_data(t for _, tags in sents for t in tags)
    word_ids_all, y = [], []
    for toks, tags in sents:
        wid = [None] + _subword_ids(toks) + [None]
        word_ids_all.append(wid)
        y.append(align_labels(wid, labels.encode(tags)))
    T = max(map(len, y))
    Y = torch.tensor([r + [IGNORE_INDEX] * (T - len(r)) for r in y])
    feats = torch.zeros(len(sents), T, 1024)
    for b, ((toks, _), wid) in enumerate(zip(sents, word_ids_all)):
        feats[b, 1:len(wid) - 1] = _hashed_words([toks[w] for w in wid[1:-1]], 1024)
    torch.manual_seed(0)
    head = TokenTagger(1024, len(labels), dropout=0.0)
    logits = head(feats)
    # the loss ignores -100 and averages over labelled positions only
    keep = Y != IGNORE_INDEX
    manual = F.cross_entropy(logits[keep], Y[keep])
    assert head.loss(logits, Y).item() == pytest.approx(manual.item(), rel=1e-5)
    pred = head.decode(logits, keep)
    assert [len(p) for p in pred] == [len(t) for _, t in sents]  # one tag per word (first subwords)
    assert pred == [row[m].tolist() for row, m in zip(logits.argmax(-1), keep)]


def _case(word: str) -> str:
    return "UPPER" if word.isupper() and len(word) > 1 else "Title" if word[:1].isupper() else \
        "lower" if word[:1].islower() else "other"


def test_token_tagger_learns_case_of_held_out_bbc_words():
    """Truecasing (Lita et al. 2003) as tagging on real text: each word of a BBC article is
    tagged with its case (lower, Title, UPPER, other) from features that cannot see it (the
    hashed lower-cased word, and whether it starts a sentence), through the made-up subword
    segmentation (first subwords labelled). Trained on 2/3 of 223 articles, scored on the rest."""
    import re

    docs = [re.findall(r"\w+|[^\w\s]", text)[:32] for text, _ in assets.bbc_news()[::10]]
    labels = LabelSet.from_data(["Title", "UPPER", "lower", "other"])
    C = 2048

    def tensors(rows):
        wids = [[None] + _subword_ids(words) + [None] for words in rows]
        y = [align_labels(wid, labels.encode([_case(w) for w in words])) for wid, words in zip(wids, rows)]
        T = max(map(len, y))
        X = torch.zeros(len(rows), T, C + 1)
        for b, (words, wid) in enumerate(zip(rows, wids)):
            at = [words[w] for w in wid[1:-1]]
            X[b, 1:len(wid) - 1, :C] = _hashed_words(at, C)
            X[b, 1:len(wid) - 1, C] = torch.tensor([float(w == 0 or words[w - 1] in ".!?") for w in wid[1:-1]])
        return X, torch.tensor([r + [IGNORE_INDEX] * (T - len(r)) for r in y])

    cut = len(docs) * 2 // 3
    (x_tr, y_tr), (x_te, y_te) = tensors(docs[:cut]), tensors(docs[cut:])
    torch.manual_seed(0)
    head = TokenTagger(C + 1, len(labels), dropout=0.0)
    opt = torch.optim.Adam(head.parameters(), lr=0.1)
    for _ in range(40):
        opt.zero_grad()
        head.loss(head(x_tr), y_tr).backward()
        opt.step()
    with torch.no_grad():
        pred = head.decode(head(x_te), y_te != IGNORE_INDEX)
    gold = [labels.encode([_case(w) for w in words]) for words in docs[cut:]]
    acc = accuracy([g for row in gold for g in row], [p for row in pred for p in row])
    majority = max(sum(g == k for row in gold for g in row) for k in range(len(labels))) / sum(map(len, gold))
    # a rule that needs no learning: Title at the start of a sentence, else lower
    rule = [[labels.id("Title") if w == 0 or words[w - 1] in ".!?" else labels.id("lower")
             for w in range(len(words))] for words in docs[cut:]]
    rule_acc = accuracy([g for row in gold for g in row], [p for row in rule for p in row])
    # measured: 0.804 against the majority tag 0.694 and the rule 0.748
    assert acc > majority + 0.08 and acc > rule_acc + 0.03, (acc, majority, rule_acc)


def test_pack_labelled():
    scores = torch.arange(12.0).view(1, 6, 2).repeat(2, 1, 1)
    labels = torch.tensor([[-100, 3, -100, 4, 5, -100], [-100, -100, 7, -100, -100, -100]])
    s, y, m = pack_labelled(scores, labels)
    assert y.tolist() == [[3, 4, 5], [7, -100, -100]]
    assert m.tolist() == [[True, True, True], [True, False, False]]
    assert s[0, :, 0].tolist() == [2, 6, 8] and s[1, 0, 0].item() == 4


def test_pool_words_batched_and_differentiable():
    h = torch.randn(2, 6, 3, requires_grad=True)
    ids = [[None, 0, 0, 1, None, None], [None, 0, 1, 1, 2, None]]
    for reduce in ("first", "mean", "max"):
        words, mask = pool_words(h, ids, reduce)
        assert words.shape == (2, 3, 3) and mask.tolist() == [[1, 1, 0], [1, 1, 1]]
        assert torch.equal(words[0, :2], word_scores(h[0], ids[0], reduce))
        assert (words[0, 2] == 0).all()
        words.sum().backward()
    assert torch.isfinite(h.grad).all() and h.grad[0, 0].abs().sum() == 0  # [CLS] takes no part
    with pytest.raises(ValueError, match="no subword"):
        pool_words(h, [[None, 0, 2, 2, None, None], ids[1]])
