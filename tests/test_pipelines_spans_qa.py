"""SpanTagger on the nested-span fixture and QuestionAnswerer on the SQuAD v2.0 fixture."""

from __future__ import annotations

import pytest

from transferlm.data.formats import read_spans, read_squad
from transferlm.pipelines import QuestionAnswerer, SpanTagger

FIXTURES = "tests/fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")


def test_span_tagger_fits_nested_fixture(tmp_path):
    ex = read_spans(f"{FIXTURES}/nested_spans.jsonl")
    tokens, spans = [e.tokens for e in ex], [e.spans for e in ex]
    labels = sorted({s.label for row in spans for s in row})
    st = SpanTagger.new("minilm", labels=labels, max_width=6, max_length=32)
    st.fit(tokens, spans, epochs=1, min_steps=60, batch_size=3, progress=False)  # head lr 1e-3

    m = st.evaluate(tokens, spans)
    assert m["f1"] == 1.0, m
    pred = st.predict_tokens(tokens[:1])[0]
    assert {(e["start"], e["end"], e["label"]) for e in pred} == {(1, 5, "ORG"), (3, 5, "LOC"), (1, 6, "FAC")}
    text = " ".join(tokens[0])
    for e in st.predict([text])[0]:
        assert text[e["start"]:e["end"]] == e["text"]
    again = SpanTagger.from_pretrained(st.save_pretrained(tmp_path / "spans"))
    assert again.predict_tokens(tokens) == st.predict_tokens(tokens)


def test_qa_fits_squad_v2_fixture_with_windows(tmp_path):
    ex = read_squad(f"{FIXTURES}/squad_v2.json")
    qa = QuestionAnswerer.new("minilm", max_length=48, stride=16)  # contexts need 2+ windows
    feats, meta = qa.features(ex, train=True)
    assert len(feats) > len(ex)
    qa.fit(ex, epochs=1, lr=5e-4, min_steps=60, batch_size=4, progress=False)
    assert qa.options.null_threshold == 0.0  # v2.0 data turns the no-answer option on
    scores = qa.evaluate(ex)
    assert scores["exact"] == 100.0, scores
    ans = qa.predict([{"question": ex[0].question, "context": ex[0].context}])[0]
    assert ex[0].context[ans["start"]:ans["end"]] == ans["answer"]
    assert ans["answer"] in {a.text for a in ex[0].answers}
    again = QuestionAnswerer.from_pretrained(qa.save_pretrained(tmp_path / "qa"))
    assert again.predict(ex) == qa.predict(ex)
