"""SpanTagger and QuestionAnswerer: fitted on examples made from templates, scored on held-out
examples whose names never occur in training; the nested-span and SQuAD v2.0 fixtures check the
readers, windows and save / load.

No nested-entity or SQuAD data can be had here (/work/shared/ASSETS.md), so the held-out sets are
built below: the same sentence frames, disjoint fillers (cities, genes, people) between training
and test, so a model scores on them only by reading the context, not by remembering strings."""

from __future__ import annotations

import random

import pytest

from transferlm.data.formats import Answer, QAExample, Span, read_spans, read_squad
from transferlm.pipelines import QuestionAnswerer, SpanTagger

FIXTURES = "tests/fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")

# Fillers: the first part of each list is for training, the rest only for the held-out test.
_CITIES = ["London", "Paris", "Los Angeles", "Madrid", "Berlin", "San Diego", "Chicago", "Vienna", "Oslo", "Toronto",
           "Buenos Aires", "Denver", "Prague", "Seattle", "Hong Kong", "Munich", "Cape Town", "Houston", "Athens",
           "Milan"]
_GENES = ["IL-2", "p53", "BRCA1", "TNF", "MYC", "KRAS", "EGFR", "CD4", "IL-6", "HER2", "RAS", "PTEN"]
_PROTEINS = ["CD28", "actin", "insulin", "keratin", "ferritin", "tubulin", "collagen", "myosin", "elastin"]


def _span_examples(cities, genes, proteins, n, seed):
    """Nested spans in two frames (as in tests/fixtures/nested_spans.jsonl) and sentences with none."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        if k % 3 == 0:
            c = rng.choice(cities).split()  # ORG inside FAC, LOC inside both
            n = len(c)
            out.append((["The", "University", "of", *c, "hospital", "opened"],
                        [Span(1, 3 + n, "ORG"), Span(3, 3 + n, "LOC"), Span(1, 4 + n, "FAC")]))
        elif k % 3 == 1:
            g, p = rng.choice(genes), rng.choice(proteins)  # protein inside DNA
            out.append(([g, "gene", "expression", "requires", p],
                        [Span(0, 2, "DNA"), Span(0, 1, "protein"), Span(4, 5, "protein")]))
        else:
            out.append((rng.choice([["Nothing", "here"], ["It", "rained", "all", "day"], ["We", "left", "early"]]), []))
    return out


def test_span_tagger_scores_held_out_nested_spans(tmp_path):
    train = _span_examples(_CITIES[:12], _GENES[:7], _PROTEINS[:5], 48, seed=0)
    test = _span_examples(_CITIES[12:], _GENES[7:], _PROTEINS[5:], 24, seed=1)
    fixture = read_spans(f"{FIXTURES}/nested_spans.jsonl")
    labels = sorted({s.label for e in fixture for s in e.spans})
    st = SpanTagger.new("minilm", labels=labels, max_width=6, max_length=32)
    assert st.evaluate([t for t, _ in test], [s for _, s in test])["f1"] < 0.2  # untrained
    st.fit([t for t, _ in train], [s for _, s in train], epochs=1, min_steps=120, batch_size=4, progress=False)

    tokens = [e.tokens for e in fixture]  # read_spans; its "New York" is never seen in training
    m = st.evaluate([t for t, _ in test] + tokens, [s for _, s in test] + [e.spans for e in fixture])
    assert m["f1"] >= 0.9, m  # fillers never seen in training
    text = " ".join(tokens[0])
    for e in st.predict([text])[0]:
        assert text[e["start"]:e["end"]] == e["text"]
    again = SpanTagger.from_pretrained(st.save_pretrained(tmp_path / "spans"))
    assert again.predict_tokens(tokens) == st.predict_tokens(tokens)


_PEOPLE = ["Anna Weber", "Tom Becker", "Maria Lopez", "John Carter", "Lena Fischer", "Paul Dubois", "Sara Kim",
           "Omar Haddad", "Eva Novak", "Ivan Petrov", "Nora Berg", "Luca Rossi", "Mia Jensen", "Hugo Martin"]
_JOBS = ["teacher", "doctor", "pilot", "chef", "lawyer", "nurse", "farmer", "painter"]


def _qa_examples(people, cities, n, seed):
    """SQuAD v2.0-style: where / when was X born, what did X work as, and a question the context
    does not answer; contexts long enough for two windows at max_length 48."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        name, city, job = rng.choice(people), rng.choice(cities), rng.choice(_JOBS)
        year = str(rng.randint(1900, 1999))
        other = rng.choice([c for c in cities if c != city])
        context = (f"{name} was born in {city} in {year}. After school {name.split()[0]} moved to {other} "
                   f"and worked there as a {job} for many years. The family still lives in the old house near the "
                   "river, which has a red door, a small garden and a view of the hills.")
        q, a = [(f"Where was {name} born?", city), (f"When was {name} born?", year),
                (f"What did {name} work as?", job), (f"Who did {name} marry?", None)][k % 4]
        answers = [] if a is None else [Answer(a, context.index(a if a != city else f"in {city}") + (3 if a == city else 0))]
        out.append(QAExample(f"q{seed}-{k}", q, context, answers, is_impossible=a is None))
    return out


def test_qa_scores_held_out_questions_with_windows(tmp_path):
    train = _qa_examples(_PEOPLE[:9], _CITIES[:12], 64, seed=0)
    test = _qa_examples(_PEOPLE[9:], _CITIES[12:], 24, seed=1)
    qa = QuestionAnswerer.new("minilm", max_length=48, stride=16)  # contexts need 2+ windows
    feats, _ = qa.features(train, train=True)
    assert len(feats) > len(train)
    qa.fit(train, epochs=1, lr=1e-4, min_steps=150, batch_size=4, progress=False)
    assert qa.options.null_threshold == 0.0  # v2.0 data turns the no-answer option on
    scores = qa.evaluate(test)  # people and cities never seen in training
    assert scores["exact"] >= 80.0, scores  # "no answer" everywhere scores 25
    for ex, ans in zip(test, qa.predict(test)):
        assert ex.context[ans["start"]:ans["end"]] == ans["answer"]
    # The SQuAD v2.0 fixture through the reader, and save / load.
    ex = read_squad(f"{FIXTURES}/squad_v2.json")
    again = QuestionAnswerer.from_pretrained(qa.save_pretrained(tmp_path / "qa"))
    assert again.predict(ex) == qa.predict(ex)
