"""Metrics against the references: seqeval (entity level) and scikit-learn (classification)."""

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import sequence_labeling as seq_default
from seqeval.metrics import v1 as seq_strict
from seqeval.scheme import IOB2, IOBES

from transferlm.data import assets
from transferlm.training import metrics as M

BIO_TAGS = ["O", "B-PER", "I-PER", "B-geo-loc", "I-geo-loc", "B", "I"]
BIOES_TAGS = BIO_TAGS + ["E-PER", "S-PER", "E-geo-loc", "S-geo-loc", "E", "S"]


def _pairs(alphabet):
    """Lists of (gold, predicted) tag sentences of equal length, drawn from `alphabet`."""
    sent = st.integers(0, 9).flatmap(lambda n: st.tuples(
        st.lists(st.sampled_from(alphabet), min_size=n, max_size=n),
        st.lists(st.sampled_from(alphabet), min_size=n, max_size=n)))
    return st.lists(sent, min_size=1, max_size=6)


def _compare(ours: M.Report, ref_fn, y_true, y_pred, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, s = ref_fn(y_true, y_pred, average=None, **kw)
        per_ref = (p, r, f, s)
        averaged = {a: ref_fn(y_true, y_pred, average=a, **kw) for a in ("micro", "macro", "weighted")}
    keys = list(ours.per_class)
    assert keys == sorted(keys)
    assert len(keys) == len(per_ref[0])
    for k, key in enumerate(keys):
        got = ours.per_class[key]
        assert got.precision == pytest.approx(per_ref[0][k])
        assert got.recall == pytest.approx(per_ref[1][k])
        assert got.f1 == pytest.approx(per_ref[2][k])
        assert got.support == per_ref[3][k]
    for name, ref in averaged.items():
        got = getattr(ours, name)
        if name == "macro" and not keys:
            continue  # seqeval averages an empty array to NaN; we say 0.0
        assert (got.precision, got.recall, got.f1) == pytest.approx(tuple(ref[:3])), name


@settings(max_examples=300, deadline=None)
@given(_pairs(BIOES_TAGS))
def test_entity_prf_default_mode_equals_seqeval(pairs):
    y_true = [list(t) for t, _ in pairs]
    y_pred = [list(p) for _, p in pairs]
    _compare(M.entity_prf(y_true, y_pred), seq_default.precision_recall_fscore_support,
             y_true, y_pred)
    for t in y_true:  # the chunker itself, sentence by sentence
        assert M.get_entities(t) == seq_default.get_entities(t)


@settings(max_examples=200, deadline=None)
@given(_pairs(BIO_TAGS))
def test_entity_prf_strict_iob2_equals_seqeval(pairs):
    y_true = [list(t) for t, _ in pairs]
    y_pred = [list(p) for _, p in pairs]
    _compare(M.entity_prf(y_true, y_pred, mode="strict", scheme="IOB2"),
             seq_strict.precision_recall_fscore_support, y_true, y_pred, scheme=IOB2)


@settings(max_examples=300, deadline=None)
@given(_pairs(BIOES_TAGS))
def test_entity_prf_strict_iobes_equals_seqeval(pairs):
    y_true = [list(t) for t, _ in pairs]
    y_pred = [list(p) for _, p in pairs]
    _compare(M.entity_prf(y_true, y_pred, mode="strict", scheme="IOBES"),
             seq_strict.precision_recall_fscore_support, y_true, y_pred, scheme=IOBES)


def test_entity_prf_on_wnut_equals_seqeval():
    """Real WNUT-16 gold against a corrupted copy: every 7th tag replaced."""
    gold = [tags for _, tags in assets.wnut16()[:600]]
    rng = np.random.default_rng(0)
    alphabet = sorted({t for s in gold for t in s})
    pred = [[alphabet[rng.integers(len(alphabet))] if rng.random() < 1 / 7 else t for t in s]
            for s in gold]
    ours = M.entity_prf(gold, pred)
    _compare(ours, seq_default.precision_recall_fscore_support, gold, pred)
    assert 0.2 < ours.micro.f1 < 0.9  # a real, non-trivial comparison
    _compare(M.entity_prf(gold, pred, mode="strict", scheme="IOB2"),
             seq_strict.precision_recall_fscore_support, gold, pred, scheme=IOB2)


def test_entity_prf_hand_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "I-LOC"]]
    rep = M.entity_prf(gold, pred)
    assert rep.micro.f1 == 1.0  # lenient: I-LOC after O starts a LOC entity
    strict = M.entity_prf(gold, pred, mode="strict", scheme="IOB2")
    assert strict.micro.precision == 1.0 and strict.micro.recall == 0.5
    with pytest.raises(ValueError, match="scheme"):
        M.entity_prf(gold, pred, mode="strict", scheme="BILOU")
    with pytest.raises(ValueError, match="sentence 0"):
        M.entity_prf(gold, [["O"]])


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 11), min_size=n, max_size=n),
    st.lists(st.integers(0, 11), min_size=n, max_size=n))))
def test_classification_metrics_equal_sklearn(pair):
    y_true, y_pred = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
        for avg in ("macro", "micro", "weighted"):
            assert M.f1(y_true, y_pred, avg) == pytest.approx(
                skm.f1_score(y_true, y_pred, average=avg)), avg
        assert M.matthews_corrcoef(y_true, y_pred) == pytest.approx(
            skm.matthews_corrcoef(y_true, y_pred), abs=1e-12)
        p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred)
    rep = M.precision_recall_f1(y_true, y_pred)
    assert [x.precision for x in rep.per_class.values()] == pytest.approx(list(p))
    assert [x.recall for x in rep.per_class.values()] == pytest.approx(list(r))
    assert [x.support for x in rep.per_class.values()] == list(s)


def test_classification_on_bbc_labels_equals_sklearn():
    gold = [lab for _, lab in assets.bbc_news()]
    rng = np.random.default_rng(1)
    names = sorted(set(gold))
    pred = [names[rng.integers(5)] if rng.random() < 0.3 else g for g in gold]
    assert M.f1(gold, pred, "macro") == pytest.approx(skm.f1_score(gold, pred, average="macro"))
    assert M.matthews_corrcoef(gold, pred) == pytest.approx(skm.matthews_corrcoef(gold, pred))


def test_span_prf_nested():
    gold = [[(0, 3, "ORG"), (1, 2, "LOC"), (1, 3, "LOC")], [(0, 1, "PER")]]
    pred = [[(0, 3, "ORG"), (1, 2, "LOC"), (0, 2, "LOC")], []]
    rep = M.span_prf(gold, pred)
    assert rep.counts == {"LOC": (1, 2, 2), "ORG": (1, 1, 1), "PER": (0, 0, 1)}
    assert rep.micro.precision == pytest.approx(2 / 3)
    assert rep.micro.recall == pytest.approx(2 / 4)
    assert rep.micro.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_squad_normalisation_and_scores():
    assert M.normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert M.normalize_answer("an apple a day") == "apple day"
    assert M.normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert M.squad_exact_match("the Denver Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    # pred tokens {denver, broncos, team}, gold "broncos": P = 1/3, R = 1, F1 = 0.5
    assert M.squad_f1("Denver Broncos team", ["Broncos"]) == pytest.approx(0.5)
    # max over gold answers
    assert M.squad_f1("Denver Broncos team", ["Broncos", "Denver Broncos"]) == pytest.approx(0.8)
    # v2.0: no gold answer means the right answer is ""
    assert M.squad_exact_match("", []) == 1.0 and M.squad_f1("something", []) == 0.0
    assert M.squad_f1("", ["a"]) == 1.0  # "a" normalises to nothing: treated as no answer
    scores = M.squad_scores({"q1": "Broncos", "q2": ""}, {"q1": ["Denver Broncos"], "q2": [],
                                                          "q3": ["x"]})

    assert scores["exact"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    assert scores["NoAns_exact"] == 100.0 and scores["HasAns_total"] == 2


POS_TAGS = ["at", "nn", "np-tl", "ppss", "ber*", ".", "NOUN", "-LRB-", "$"]


@settings(max_examples=150, deadline=None)
@given(_pairs(POS_TAGS))
def test_word_prf_equals_sklearn_classification_report(pairs):
    """Plain tag sets: per-tag P/R/F1 and macro / weighted F1 over the words are scikit-learn's
    classification_report on the flattened words (labels = gold and predicted tags)."""
    gold = [list(g) for g, _ in pairs]
    pred = [list(p) for _, p in pairs]
    flat_g = [t for row in gold for t in row]
    flat_p = [t for row in pred for t in row]
    if not flat_g:
        return
    rep = M.word_prf(gold, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = skm.classification_report(flat_g, flat_p, output_dict=True, zero_division=0)
    assert sorted(rep.per_class) == sorted(k for k in ref if k not in ("accuracy", "macro avg",
                                                                      "weighted avg", "micro avg"))
    for tag, got in rep.per_class.items():
        r = ref[tag]
        assert (got.precision, got.recall, got.f1) == pytest.approx((r["precision"], r["recall"], r["f1-score"]))
        assert got.support == r["support"]
    for ours, name in ((rep.macro, "macro avg"), (rep.weighted, "weighted avg")):
        r = ref[name]
        assert (ours.precision, ours.recall, ours.f1) == pytest.approx((r["precision"], r["recall"], r["f1-score"]))
    acc = ref.get("accuracy", ref.get("micro avg", {}).get("f1-score"))
    assert rep.micro.f1 == pytest.approx(acc) and M.accuracy(flat_g, flat_p) == pytest.approx(acc)


def test_word_prf_hand_example_and_errors():
    gold = [["at", "nn", "."], ["ppss", "ber*"]]
    pred = [["at", "jj", "."], ["ppss", "ber*"]]
    rep = M.word_prf(gold, pred)
    assert rep.per_class["nn"].recall == 0.0 and rep.per_class["jj"].precision == 0.0
    assert rep.per_class["at"].f1 == 1.0 and rep.micro.f1 == pytest.approx(4 / 5)
    assert rep.macro.f1 == pytest.approx(4 / 6)  # six tags, four of them perfect
    with pytest.raises(ValueError, match="sentence 1"):
        M.word_prf(gold, [pred[0], ["ppss"]])
