"""Tagger (softmax / CRF) on a WNUT-16 slice and the BIOES CoNLL fixture."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from transferlm.data import assets
from transferlm.data.finetune_collate import encode_words, word_spans
from transferlm.data.formats import read_conll
from transferlm.pipelines import Tagger
from transferlm.training.metrics import entity_prf

FIXTURES = "tests/fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wnut():
    data = assets.wnut16()
    tags = sorted({t for _, ts in data for t in ts})
    return data, ["O"] + [t for t in tags if t != "O"]


def _with_entities(rows):
    return [d for d in rows if any(t != "O" for t in d[1])]


@pytest.fixture(scope="module")
def tagger(wnut):
    """Trained on 96 tweets with entities from the first 800; held out: 120 tweets with entities
    from tweet 1,200 on (no tweet in both)."""
    data, labels = wnut
    train, test = _with_entities(data[:800])[:96], _with_entities(data[1200:])[:120]
    tg = Tagger.new("minilm", labels=labels, head="softmax", max_length=48)
    tg.fit([w for w, _ in train], [t for _, t in train], epochs=1, lr=5e-4, batch_size=8,
           min_steps=40, warmup_ratio=0.0, progress=False)
    return tg, train, test


def _lexicon_f1(train, test) -> float:
    """Entity F1 on `test` of tagging each word with its most frequent tag in `train` (O if unseen)."""
    seen: dict[str, Counter] = {}
    for words, tags in train:
        for w, t in zip(words, tags):
            seen.setdefault(w.lower(), Counter())[t] += 1
    pred = [[seen[w.lower()].most_common(1)[0][0] if w.lower() in seen else "O" for w in words] for words, _ in test]
    return entity_prf([t for _, t in test], pred).micro.f1


def test_wnut_tagger_learns_and_offsets_are_exact(tagger):
    tg, train, test = tagger
    m = tg.evaluate([w for w, _ in test], [t for _, t in test])  # held-out tweets
    lexicon = _lexicon_f1(train, test)  # measured: 0.14; the tagger 0.35; untrained 0.01
    assert m["f1"] > 0.25 and m["f1"] > lexicon + 0.1, (m, lexicon)
    texts = [" ".join(w) for w, _ in test[:40]]
    found = 0
    for text, ents in zip(texts, tg.predict(texts)):
        for e in ents:
            found += 1
            assert text[e["start"]:e["end"]] == e["text"]
            assert e["label"] in {t[2:] for t in tg.labels if t != "O"} and 0 < e["score"] <= 1
            # entity boundaries fall on word boundaries of the text
            starts = {a for _, a, _ in word_spans(text)}
            ends = {b for _, _, b in word_spans(text)}
            assert e["start"] in starts and e["end"] in ends
    assert found > 0


def test_offsets_with_forced_predictions(wnut):
    _, labels = wnut
    tg = Tagger.new("minilm", labels=labels, head="softmax", max_length=32, stride=8)
    b = labels.index("B-person")
    with torch.no_grad():  # every word its own B-person entity: offsets must be the words'
        tg.head.proj.weight.zero_()
        tg.head.proj.bias.fill_(-10.0)
        tg.head.proj.bias[b] = 10.0
    text = "  Obama met @bob_smith in New-York \u2019s #BigApple: http://t.co/x ok!! " * 4
    ents = tg.predict([text, ""])
    assert ents[1] == []
    spans = word_spans(text)
    assert [(e["start"], e["end"], e["text"]) for e in ents[0]] == [(a, b_, w) for w, a, b_ in spans]
    assert len(encode_words(tg.tokenizer, [w for w, _, _ in spans], 32, 8)) > 1  # it was windowed
    out = tg.predict_tokens([["a", "\ufe0f", "b"]])[0]  # a word with no subword still gets a tag
    assert out["tags"] == ["B-person"] * 3


def test_crf_fits_bioes_fixture_and_roundtrips(tmp_path):
    sents = read_conll(f"{FIXTURES}/tagging_bioes.conll", scheme="BIOES")
    tokens, tags = [s.tokens for s in sents], [s.tags for s in sents]
    labels = ["O"] + sorted({t for row in tags for t in row} - {"O"})
    tg = Tagger.new("minilm", labels=labels, head="crf", max_length=32)
    tg.fit(tokens, tags, epochs=1, lr=5e-4, min_steps=40, batch_size=4, progress=False)
    for agg in ("first", "mean"):  # decoding-time option: the same weights, two aggregations
        tg.options.aggregation = agg
        pred, _ = tg.predict_tags(tokens)
        assert pred == tags
        assert tg.evaluate(tokens, tags)["f1"] == 1.0
    folder = tg.save_pretrained(tmp_path / "crf")
    again = Tagger.from_pretrained(folder)
    assert again.options.head == "crf" and again.options.aggregation == "mean"
    assert again.predict_tokens(tokens) == tg.predict_tokens(tokens)
    with pytest.raises(ValueError, match="BIO tags"):
        Tagger.new("minilm", labels=labels, label_all_subwords=True).fit(tokens, tags, progress=False)
    with pytest.raises(KeyError, match="unknown tag"):
        tg.evaluate(tokens[:1], [["B-XYZ"] * len(tokens[0])])


def test_crf_decoding_respects_bio_constraints(wnut):
    data, labels = wnut
    tg = Tagger.new("minilm", labels=labels, head="crf", max_length=64)
    with torch.no_grad():  # emissions that alone would put I- tags after O
        tg.head.proj.bias.normal_(0, 5.0)
    tags, _ = tg.predict_tags([w for w, _ in data[:20]])
    for row in tags:
        prev = "O"
        for t in row:
            assert not (t.startswith("I-") and prev[2:] != t[2:]), row
            prev = t


def test_window_labels_are_well_formed_and_words_kept():
    from transferlm.data.finetune_collate import align_window_labels
    from transferlm.heads.crf import transition_constraints
    from transferlm.tokenization.io import load_tokenizer

    labels = ["O", "B-X", "I-X", "E-X", "S-X"]
    words = ["w"] * 3 + ["long", "entity", "here", "now"] + ["z"] * 3
    tags = ["O"] * 3 + ["B-X", "I-X", "I-X", "E-X"] + ["O"] * 3
    tok = load_tokenizer(assets.path("minilm"))
    wins = encode_words(tok, words, max_length=7, stride=2)  # 5 subwords per window
    assert len(wins) > 2
    seen = sorted({w for win in wins for w in win.word_ids if w is not None})
    assert seen == list(range(len(words)))
    start, allowed, end = transition_constraints(labels, "BIOES")
    for win in wins:
        ids = [i for i in align_window_labels(win.word_ids, [labels.index(t) for t in tags], labels)
               if i != -100]
        assert bool(start[ids[0]]) and bool(end[ids[-1]]), [labels[i] for i in ids]
        assert all(bool(allowed[a, b]) for a, b in zip(ids, ids[1:]))


def test_transformers_loads_the_softmax_tagger(wnut, tmp_path):
    transformers = pytest.importorskip("transformers")
    _, labels = wnut
    tg = Tagger.new("minilm", labels=labels, head="softmax", max_length=32)
    folder = tg.save_pretrained(tmp_path / "tagger")
    hf = transformers.AutoModelForTokenClassification.from_pretrained(folder).eval()
    assert hf.config.id2label == dict(enumerate(labels))
    feats, _ = tg.features([["Obama", "visited", "Paris", "!"]])
    ids = torch.tensor([feats[0]["input_ids"]])
    with torch.no_grad():
        ref = hf(input_ids=ids).logits
        ours = tg.model({"input_ids": ids, "attention_mask": torch.ones_like(ids)})["logits"]
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)
