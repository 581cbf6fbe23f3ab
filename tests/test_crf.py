"""CRF: Viterbi and log Z against brute force, constraints, padding, and a short training run."""

import itertools
import math

import pytest
import torch

from transferlm.data import assets
from transferlm.data.formats import LabelSet
from transferlm.heads.crf import CRF, transition_constraints
from transferlm.heads.tagging import CRFTagger


pytestmark = pytest.mark.usefixtures("one_thread")


BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@torch.no_grad()
def _brute(crf: CRF, em: torch.Tensor, length: int):
    """All K^length tag sequences of one row: (best path, best score, log-sum-exp of scores)."""
    K = em.shape[-1]
    scores = {}
    for path in itertools.product(range(K), repeat=length):
        tags = torch.tensor([list(path) + [0] * (em.shape[0] - length)])
        mask = torch.zeros(1, em.shape[0], dtype=torch.bool)
        mask[0, :length] = True
        scores[path] = float(crf.score(em.unsqueeze(0), tags, mask)[0])
    best = max(scores, key=scores.get)
    finite = [s for s in scores.values() if s > -math.inf]
    m = max(finite)
    lse = m + math.log(sum(math.exp(s - m) for s in finite))
    return list(best), scores[best], lse


@torch.no_grad()
def _manual_score(crf, em, path):
    s = float(crf.start[path[0]]) + float(crf.end[path[-1]])
    s += sum(float(em[t, y]) for t, y in enumerate(path))
    s += sum(float(crf.transitions[a, b]) for a, b in zip(path, path[1:]))
    return s


@pytest.mark.parametrize("constrained", [False, True])
def test_viterbi_and_partition_equal_brute_force(constrained):
    torch.manual_seed(0)
    K = len(BIO)
    cons = transition_constraints(BIO, "BIO") if constrained else None
    crf = CRF(K, cons, init_range=1.0)
    T = 4
    em = torch.randn(3, T, K) * 2
    lengths = [4, 3, 1]
    mask = torch.arange(T).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    paths, vscores = crf.viterbi(em, mask)
    logz = crf.log_partition(em, mask)
    for b, n in enumerate(lengths):
        best, best_score, lse = _brute(crf, em[b], n)
        assert paths[b] == best
        assert vscores[b].item() == pytest.approx(best_score, abs=1e-4)
        assert logz[b].item() == pytest.approx(lse, abs=1e-4)
        # score() itself is the textbook formula
        assert best_score == pytest.approx(_manual_score(crf, em[b], best), abs=1e-4)


def test_probabilities_sum_to_one():
    torch.manual_seed(1)
    crf = CRF(3, init_range=1.0)
    em = torch.randn(1, 3, 3)
    mask = torch.ones(1, 3, dtype=torch.bool)
    total = 0.0
    for path in itertools.product(range(3), repeat=3):
        total += math.exp(-crf.nll(em, torch.tensor([path]), mask).item())
    assert total == pytest.approx(1.0, abs=1e-5)


def _legal_bio(tags):
    prev = "O"
    for t in tags:
        if t.startswith("I-") and prev[2:] != t[2:]:
            return False
        prev = t
    return True


def test_constrained_decoding_never_illegal():
    torch.manual_seed(2)
    cons = transition_constraints(BIO, "BIO")
    crf = CRF(len(BIO), cons)
    # emissions that strongly prefer I- tags everywhere: unconstrained Viterbi would output them
    em = torch.randn(64, 7, len(BIO))
    em[..., 2] += 3.0
    em[..., 4] += 2.5
    lengths = torch.randint(1, 8, (64,))
    mask = torch.arange(7).unsqueeze(0) < lengths.unsqueeze(1)
    paths, _ = crf.viterbi(em, mask)
    for p, n in zip(paths, lengths.tolist()):
        assert len(p) == n
        assert _legal_bio([BIO[i] for i in p])
    free, _ = CRF(len(BIO)).viterbi(em, mask)
    assert not all(_legal_bio([BIO[i] for i in p]) for p in free)  # the test has teeth


def test_bioes_constraints():
    labels = ["O", "B-X", "I-X", "E-X", "S-X"]
    start, allowed, end = transition_constraints(labels, "BIOES")
    ix = {lab: i for i, lab in enumerate(labels)}
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    assert allowed[ix["B-X"], ix["E-X"]] and not allowed[ix["B-X"], ix["O"]]
    assert allowed[ix["E-X"], ix["S-X"]] and not allowed[ix["S-X"], ix["I-X"]]


def test_plain_tag_sets_get_no_constraints():
    pos = ["at", "nn", "ppss", "ber*", ".", "I-X"]  # plain: even an entity-shaped tag is free
    tagger = CRFTagger(8, len(pos), labels=pos, constraints="plain")
    assert bool((tagger.crf.trans_mask == 0).all()) and bool((tagger.crf.start_mask == 0).all())
    assert bool((CRFTagger(8, len(pos), labels=pos, constraints=None).crf.end_mask == 0).all())
    bio = CRFTagger(8, len(BIO), labels=BIO, constraints="bio")  # any case
    assert bool(torch.isinf(bio.crf.trans_mask).any()) and bool(torch.isinf(bio.crf.start_mask).any())
    with pytest.raises(ValueError, match="plain tag set"):
        transition_constraints(pos, "plain")
    with pytest.raises(ValueError, match="not a BIO tag"):
        transition_constraints(pos, "BIO")
    # every path is reachable: Viterbi on emissions that favour I-X after "." picks it
    em = torch.full((1, 2, len(pos)), -5.0)
    em[0, 0, pos.index(".")] = 5.0
    em[0, 1, pos.index("I-X")] = 5.0
    assert tagger.crf.viterbi(em, torch.ones(1, 2, dtype=torch.bool))[0] == [[4, 5]]


def test_illegal_gold_raises_and_gradients_are_finite():
    cons = transition_constraints(BIO, "BIO")
    crf = CRF(len(BIO), cons)
    em = torch.randn(2, 4, len(BIO), requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    with pytest.raises(ValueError, match="constraints"):
        crf.nll(em, torch.tensor([[0, 2, 0, 0], [0, 0, 0, 0]]), mask)  # O I-PER
    loss = crf.nll(em, torch.tensor([[1, 2, 0, 3], [3, 4, -100, -100]]), mask)
    loss.backward()
    assert torch.isfinite(em.grad).all() and torch.isfinite(crf.transitions.grad).all()


def test_mask_must_be_left_aligned():
    crf = CRF(3)
    with pytest.raises(ValueError, match="left-aligned"):
        crf.log_partition(torch.randn(1, 3, 3), torch.tensor([[1, 0, 1]]))


def test_crf_tagger_training_on_wnut_reduces_loss():
    """A CRF tagger over fixed random word features learns WNUT-16's tag sequences."""
    sents = assets.wnut16()[:48]
    labels = LabelSet.from_data(t for _, tags in sents for t in tags)
    torch.manual_seed(0)
    T = max(len(toks) for toks, _ in sents)
    C = 16
    feats = torch.randn(len(sents), T, C)
    y = torch.full((len(sents), T), -100)
    for b, (_, tags) in enumerate(sents):
        y[b, :len(tags)] = torch.tensor(labels.encode(tags))
    head = CRFTagger(C, len(labels), dropout=0.0, labels=labels.labels, constraints="BIO")
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    first = head.loss(head(feats), y).item()
    for _ in range(15):
        opt.zero_grad()
        loss = head.loss(head(feats), y)
        loss.backward()
        opt.step()
    last = head.loss(head(feats), y).item()
    assert last < 0.6 * first
    paths = head.decode(head(feats), y != -100)
    assert [len(p) for p in paths] == [len(t) for _, t in sents]
    assert all(_legal_bio(labels.decode(p)) for p in paths)
