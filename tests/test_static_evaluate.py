"""Our evaluators against gensim 4.4's on the same vectors (the GloVe 6B 50d asset, cut to its
20,000 most frequent words to keep the test fast): word-pair correlations, analogies (3CosAdd,
and 3CosMul through gensim's own evaluation loop), nearest neighbours; OOV counting and
case-insensitivity included."""

from __future__ import annotations

import pytest
from gensim.models import KeyedVectors

from transferlm.embeddings import evaluate as ev
from transferlm.embeddings.static import Vectors, load_glove_asset

N_WORDS = 20_000


@pytest.fixture(scope="module")
def vecs() -> Vectors:
    g = load_glove_asset().head(N_WORDS)
    # add case variants after their lower-case forms: the first (most frequent) form must win
    words = g.words[:-2] + ["Paris", "KING"]
    return Vectors(words, g.matrix)


@pytest.fixture(scope="module")
def kv(vecs: Vectors) -> KeyedVectors:
    k = KeyedVectors(vecs.dim)
    k.add_vectors(vecs.words, vecs.matrix)
    return k


@pytest.fixture(scope="module")
def questions(tmp_path_factory) -> str:
    """Every 16th Google question (all 14 sections), plus a malformed line gensim skips."""
    out, k = [], 0
    for line in ev.gensim_test_data("questions-words.txt").read_text().splitlines():
        if line.startswith(": "):
            out.append(line)
            continue
        k += 1
        if k % 16 == 0:
            out.append(line)
    out.insert(3, "only three words")
    f = tmp_path_factory.mktemp("q") / "questions.txt"
    f.write_text("\n".join(out) + "\n")
    return str(f)


@pytest.mark.parametrize("file", ["wordsim353.tsv", "simlex999.txt"])
@pytest.mark.parametrize("restrict,case,dummy", [(300_000, True, False), (5_000, True, True),
                                                 (300_000, False, False)])
def test_word_pairs_equal_gensim(vecs, kv, file, restrict, case, dummy) -> None:
    path = ev.gensim_test_data(file)
    p, s, oov = kv.evaluate_word_pairs(str(path), restrict_vocab=restrict, case_insensitive=case,
                                       dummy4unknown=dummy)
    r = ev.evaluate_word_pairs(vecs, path, restrict_vocab=restrict, case_insensitive=case,
                               dummy4unknown=dummy)
    assert r.spearman == pytest.approx(s.statistic, abs=1e-12)
    assert r.pearson == pytest.approx(p.statistic, abs=1e-12)
    assert r.oov_ratio == oov
    assert r.oov > 0


@pytest.mark.parametrize("restrict,case,dummy", [(300_000, True, False), (3_000, True, True),
                                                 (10_000, False, False)])
def test_analogies_3cosadd_equal_gensim(vecs, kv, questions, restrict, case, dummy) -> None:
    score, sections = kv.evaluate_word_analogies(questions, restrict_vocab=restrict,
                                                 case_insensitive=case, dummy4unknown=dummy)
    r = ev.evaluate_analogies(vecs, questions, restrict_vocab=restrict, case_insensitive=case,
                              dummy4unknown=dummy)
    assert r.accuracy == score
    for s in sections[:-1]:  # every section's counts, not just the total
        assert r.sections[s["section"]] == (len(s["correct"]), len(s["correct"]) + len(s["incorrect"]))
    assert r.correct == len(sections[-1]["correct"]) and r.total > 200


def test_analogies_3cosmul_equal_gensim_loop(vecs, questions, monkeypatch) -> None:
    # gensim's evaluate_word_analogies always uses 3CosAdd; run its loop with most_similar_cosmul
    # (which scores every word: 8,000 words here keep it fast)
    vecs = vecs.head(8000)
    kv = KeyedVectors(vecs.dim)
    kv.add_vectors(vecs.words, vecs.matrix)
    monkeypatch.setattr(kv, "most_similar", lambda positive, negative, topn, restrict_vocab:
                        kv.most_similar_cosmul(positive, negative, topn=topn))
    score, _ = kv.evaluate_word_analogies(questions, restrict_vocab=5_000)
    r = ev.evaluate_analogies(vecs, questions, restrict_vocab=5_000, method="3cosmul")
    assert r.accuracy == score
    add = ev.evaluate_analogies(vecs, questions, restrict_vocab=5_000, method="3cosadd")
    assert add.accuracy != r.accuracy  # the two methods really differ on this set


@pytest.mark.parametrize("pos,neg", [(["bank"], []), (["paris"], []), (["king", "woman"], ["man"]),
                                     (["Paris", "germany"], ["france"])])
def test_most_similar_equal_gensim(vecs, kv, pos, neg) -> None:
    assert ev.most_similar(vecs, pos, neg, topn=10) == kv.most_similar(positive=pos, negative=neg, topn=10)
    assert (ev.most_similar(vecs, pos, neg, topn=10, restrict_vocab=2000)
            == kv.most_similar(positive=pos, negative=neg, topn=10, restrict_vocab=2000))
    assert (ev.most_similar(vecs, pos, neg, topn=5, method="3cosmul")
            == kv.most_similar_cosmul(positive=pos, negative=neg, topn=5))
    assert ev.nearest_neighbours(vecs, pos[0], topn=3) == kv.most_similar(pos[0], topn=3)


def test_spearman_ties_match_scipy() -> None:
    from scipy import stats
    x = [1, 2, 2, 3, 5, 5, 5, 0]
    y = [0.1, 0.3, 0.2, 0.2, 0.9, 0.4, 0.4, 0.0]
    assert ev.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_bad_inputs(vecs, tmp_path) -> None:
    f = tmp_path / "q.txt"
    f.write_text("a b c d\n")
    with pytest.raises(ValueError, match=r"q.txt:1: expected a ': section' line"):
        ev.evaluate_analogies(vecs, f)
    f.write_text("zzqx\tqqzz\t3.0\n")
    with pytest.raises(ValueError, match="no similarity judgements"):
        ev.evaluate_word_pairs(vecs, f)
    with pytest.raises(KeyError, match="not in the vectors"):
        ev.most_similar(vecs, ["zzqxq"])
