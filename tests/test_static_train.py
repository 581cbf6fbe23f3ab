"""word2vec and GloVe training: the pieces against brute force and gensim (vocabulary, subsampling,
noise distribution, windows, co-occurrence counts), training that learns on real and synthetic text,
and bad corpora."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from gensim.models import Word2Vec as GensimWord2Vec

from transferlm.data import assets
from transferlm.embeddings import word2vec as w2v
from transferlm.embeddings.evaluate import most_similar
from transferlm.embeddings.glove import GloVe, GloVeConfig, cooccurrence, weighting
from transferlm.tokenization.io import TokenizerFileError


@pytest.fixture(scope="module")
def ptb() -> list[list[str]]:
    return [line.split() for line in assets.ptb_text("train").splitlines()[:3000] if line.split()]


def test_vocab_and_subsampling_equal_gensim(ptb) -> None:
    g = GensimWord2Vec(vector_size=10, min_count=3, sample=1e-3)
    g.build_vocab(ptb)
    vocab = w2v.build_vocab(ptb, min_count=3)
    assert vocab.words == g.wv.index_to_key  # same order, ties included
    assert list(vocab.counts) == [g.wv.get_vecattr(w, "count") for w in vocab.words]
    keep = w2v.keep_probabilities(vocab.counts, 1e-3)
    assert keep.min() < 0.2 and keep.max() == 1.0
    gensim_keep = np.array([g.wv.get_vecattr(w, "sample_int") for w in vocab.words]) / (2**32 - 1)
    np.testing.assert_allclose(keep, gensim_keep, atol=1e-9)


def test_noise_distribution_equals_gensim(ptb) -> None:
    g = GensimWord2Vec(vector_size=10, min_count=3, ns_exponent=0.75)
    g.build_vocab(ptb)
    vocab = w2v.build_vocab(ptb, min_count=3)
    table = w2v.noise_table(vocab.counts, 0.75)
    share = np.bincount(table.numpy(), minlength=len(vocab.words)) / len(table)
    gensim_share = np.diff(np.concatenate([[0], g.cum_table])) / g.cum_table[-1]
    np.testing.assert_allclose(share, gensim_share, atol=2e-7)


def test_learning_rate_decays_linearly() -> None:
    assert w2v.learning_rate(0.025, 0.0001, 0.0) == 0.025
    assert w2v.learning_rate(0.025, 0.0001, 0.5) == pytest.approx((0.025 + 0.0001) / 2)
    assert w2v.learning_rate(0.025, 0.0001, 1.0) == pytest.approx(0.0001)
    seen = []
    model = w2v.Word2Vec(w2v.Word2VecConfig(epochs=2, min_count=1, workers=1, batch_words=100))
    real = model._job
    model._job = lambda *a: (seen.append(a[-1]), real(*a))  # the rate each job trains with
    model.train(_synthetic())
    assert seen[0] == 0.025 and seen == sorted(seen, reverse=True) and seen[-1] < 0.0003
    # 2 epochs of 7,200 words in jobs of 100: job k starts at progress k * 100 / 14,400
    assert seen[36] == pytest.approx(w2v.learning_rate(0.025, 0.0001, 36 * 100 / 14_400))


def _brute_pairs(ids, sids, b):
    out = set()
    for t in range(len(ids)):
        for c in range(max(0, t - b[t]), min(len(ids), t + b[t] + 1)):
            if c != t and sids[c] == sids[t]:
                out.add((c, t))
    return out


def test_windows_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    ids = np.arange(40) + 100  # distinct ids: positions are recoverable
    sids = np.repeat([0, 1, 2, 3], [3, 17, 1, 19])
    window = 4
    b = window - np.random.default_rng(7).integers(0, window, len(ids))  # the draws sg_pairs will make
    inp, tgt = w2v.sg_pairs(ids, sids, window, np.random.default_rng(7))
    got = {(int(i) - 100, int(t) - 100) for i, t in zip(inp, tgt)}
    want = _brute_pairs(ids, sids, b)
    assert got == want and len(inp) == len(want)
    ctx, centre = w2v.cbow_windows(ids, sids, window, np.random.default_rng(7))
    rows = {int(t) - 100: sorted(int(x) - 100 for x in r if x >= 0) for r, t in zip(ctx, centre)}
    brute: dict[int, list[int]] = {}
    for c, t in want:
        brute.setdefault(t, []).append(c)
    assert rows == {t: sorted(cs) for t, cs in brute.items()}
    assert 20 not in rows  # the one-word sentence has no context
    del rng


def _synthetic(seed: int = 0) -> list[list[str]]:
    """Two topics: most sentences draw words from one topic, one in five from both (GloVe fits only
    the pairs that co-occur, so the rarer cross-topic pairs must be seen to be placed apart)."""
    rng = np.random.default_rng(seed)
    topics = [[f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)]]
    both = topics[0] + topics[1]
    return [list(rng.choice(both if k % 5 == 4 else topics[k % 2], size=12)) for k in range(600)]


@pytest.mark.parametrize("sg", [True, False])
def test_word2vec_learns_topics(sg: bool) -> None:
    cfg = w2v.Word2VecConfig(sg=sg, dim=16, window=3, epochs=3, min_count=1, sample=0, workers=1, seed=3)  # one worker: Hogwild threads make runs differ
    v = w2v.train_word2vec(_synthetic(), cfg)
    assert v.counts is not None and len(v) == 20
    for w in ("a0", "b3"):
        near = [x for x, _ in most_similar(v, [w], topn=9)]
        assert all(x[0] == w[0] for x in near), near  # the 9 nearest are the same topic's words


def test_word2vec_on_ptb_agrees_with_gensim(ptb) -> None:
    """Same corpus and settings: our skip-gram's nearest neighbours overlap gensim's as much as two
    gensim runs with different seeds overlap each other (minus a margin)."""
    words = ["president", "market", "million", "company", "stock", "year", "bank", "japan"]

    def neighbours(v):
        return {w: {x for x, _ in most_similar(v, [w], topn=20)} for w in words}

    def overlap(a, b):
        return np.mean([len(a[w] & b[w]) / 20 for w in words])

    from transferlm.embeddings.vectors import Vectors
    gens = []
    for seed in (1, 2):
        g = GensimWord2Vec(ptb, vector_size=50, window=5, min_count=5, sg=1, epochs=5, workers=1, seed=seed)
        gens.append(neighbours(Vectors(g.wv.index_to_key, g.wv.vectors)))
    ours = neighbours(w2v.train_word2vec(ptb, w2v.Word2VecConfig(dim=50, epochs=5, workers=1, seed=1)))
    ref = overlap(gens[0], gens[1])
    assert overlap(ours, gens[0]) > ref - 0.15, (overlap(ours, gens[0]), ref)


def test_cooccurrence_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 6, 50)
    sids = np.repeat([0, 1, 2], [20, 5, 25])
    rows, cols, x = cooccurrence(ids, sids, 6, window=3)
    want: dict[tuple[int, int], float] = {}
    for i, j in itertools.product(range(50), range(50)):
        d = abs(i - j)
        if 1 <= d <= 3 and sids[i] == sids[j]:
            want[(int(ids[i]), int(ids[j]))] = want.get((int(ids[i]), int(ids[j])), 0.0) + 1.0 / d
    got = {(int(r), int(c)): float(v) for r, c, v in zip(rows, cols, x)}
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k])


def test_glove_weighting() -> None:
    x = torch.tensor([1.0, 50.0, 100.0, 1000.0])
    torch.testing.assert_close(weighting(x, 100.0, 0.75), torch.tensor([0.01**0.75, 0.5**0.75, 1.0, 1.0]))


def test_glove_fits_log_counts_and_learns_topics() -> None:
    m = GloVe(GloVeConfig(dim=16, window=3, epochs=30, min_count=1, seed=0)).train(_synthetic())
    assert m.losses[-1] < 0.2 * m.losses[0]  # the weighted least-squares cost falls
    v = m.vectors()  # W + W~
    np.testing.assert_allclose(v.matrix, (m.W + m.Wc).numpy())
    for w in ("a0", "b3"):
        assert all(x[0] == w[0] for x, _ in most_similar(v, [w], topn=9))


def test_bad_corpora(tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n")
    with pytest.raises(w2v.CorpusError, match="empty.txt: empty corpus"):
        w2v.train_word2vec(w2v.read_sentences([empty]), source=str(empty))
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("the the the the the\nthe cat\n")
    with pytest.raises(w2v.CorpusError, match=r"tiny.txt: the vocabulary \(1 word .*min_count=5\) is too small"):
        w2v.train_word2vec(w2v.read_sentences([tiny]), source=str(tiny))
    with pytest.raises(w2v.CorpusError, match=r"tiny.txt: no word occurs min_count=9 times"):
        GloVe(GloVeConfig(min_count=9)).train(w2v.read_sentences([tiny]), source=str(tiny))
    lonely = tmp_path / "lonely.txt"
    lonely.write_text("a\nb\n" * 5)
    with pytest.raises(w2v.CorpusError, match="lonely.txt: no sentence has 2 in-vocabulary words"):
        w2v.train_word2vec(w2v.read_sentences([lonely]), source=str(lonely))
    with pytest.raises(w2v.CorpusError, match="lonely.txt: no two in-vocabulary words share a sentence"):
        GloVe().train(w2v.read_sentences([lonely]), source=str(lonely))
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"ok line\ncaf\xe9\n")
    with pytest.raises(TokenizerFileError, match=r"latin1.txt:2: not valid UTF-8 \(byte 0xe9 at column 4\)"):
        w2v.read_sentences([bad])
