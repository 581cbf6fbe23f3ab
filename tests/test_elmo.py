"""ELMo (models/elmo.py): char-CNN + forward / backward LSTM LMs trained jointly with the shared
Trainer on real PTB sentences, and the scalar mix as frozen features under a tagging head (WNUT-16)."""

from __future__ import annotations

import json

import torch
from torch.nn import functional as F

from transferlm.data import assets
from transferlm.models.elmo import EOW, BOW, PAD_CHAR, BiLM, BiLMCollate, CharVocab, ElmoTagger, ScalarMix
from transferlm.models.lstm import WordVocab
from transferlm.training.trainer import Trainer, TrainerConfig


def small_bilm(vocab_size: int) -> BiLM:
    torch.manual_seed(0)
    return BiLM(vocab_size, dim=32, num_layers=2, max_chars=20, filters=((1, 8), (2, 8), (3, 16)))


def test_char_ids_and_scalar_mix():
    cv = CharVocab(8)
    assert cv.encode_word("héllo") == [BOW, 104, 195, 169, 108, 108, 111, EOW]  # UTF-8 bytes
    assert cv.encode_word("ab") == [BOW, 97, 98, EOW] + [PAD_CHAR] * 4
    assert cv.encode_word("abcdefghij")[-1] == EOW  # cut to max_chars - 2 bytes
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.scalars.copy_(torch.tensor([0.5, -1.0, 2.0]))
        mix.gamma.fill_(1.7)
    hs = [torch.randn(2, 4, 6) for _ in range(3)]
    w = torch.tensor([0.5, -1.0, 2.0]).exp() / torch.tensor([0.5, -1.0, 2.0]).exp().sum()
    torch.testing.assert_close(mix(hs), 1.7 * (w[0] * hs[0] + w[1] * hs[1] + w[2] * hs[2]))


def test_directions_see_only_their_side():
    """Forward states at t depend on words <= t only, backward states on words >= t only, with
    right padding in the batch (the backward LM reverses each sentence's real words)."""
    bilm = small_bilm(50).eval()
    s1 = "the market fell sharply on friday".split()
    s2 = "the market fell sharply on monday".split()  # differs at the last word
    s3 = "a market fell sharply on friday".split()  # differs at the first word
    with torch.no_grad():
        (l1, m), (l2, _), (l3, _) = (bilm.features([s, ["short"]]) for s in (s1, s2, s3))
    H = bilm.dim
    top = -1
    torch.testing.assert_close(l1[top][0, :5, :H], l2[top][0, :5, :H])  # forward: blind to the future
    assert not torch.allclose(l1[top][0, :5, H:], l2[top][0, :5, H:])  # backward sees it
    torch.testing.assert_close(l1[top][0, 1:, H:], l3[top][0, 1:, H:])  # backward: blind to the past
    assert not torch.allclose(l1[top][0, 1:, :H], l3[top][0, 1:, :H])
    alone, _ = bilm.features([["short"]])
    torch.testing.assert_close(l1[top][1, :1], alone[top][0, :1], atol=1e-5, rtol=1e-4)  # padding is invisible
    assert len(l1) == 3 and l1[0].shape == (2, 6, 2 * H) and m.tolist()[1] == [True] + [False] * 5


def test_token_vectors_tell_words_apart_at_unit_scale():
    """The LSTMs must see which word came: at initialisation the char-CNN's token vectors (after its
    layer norm) are unit-sized and differ from word to word by a large share of that size. Without
    the norm they were ~0.14 in size with words differing by ~0.05, and the biLM sat at the unigram
    model's loss on PTB (docs/benchmarks.md)."""
    bilm = BiLM(1000, dim=128, num_layers=2)
    words = assets.ptb_text("valid").split()[:300]
    chars, _ = bilm.chars.encode([words])
    with torch.no_grad():
        tok = bilm.cnn(chars)[0]  # (T, H)
    assert 0.5 < float(tok.pow(2).mean().sqrt()) < 2.0  # unit scale
    assert float(tok.std(0).mean()) > 0.2  # across words, per dimension (0.05 without the norm)


def test_bilm_trains_jointly_on_ptb(tmp_path):
    lines = [l.split() for l in assets.ptb_text("train").splitlines()[:400] if l.strip()]
    vocab = WordVocab.build([" ".join(l) for l in lines], max_size=1500)
    bilm = small_bilm(len(vocab))
    collate = BiLMCollate(vocab.stoi, bilm.chars, max_len=30)
    cfg = TrainerConfig(run_dir=str(tmp_path / "elmo"), max_steps=40, batch_size=20, lr=3e-3, weight_decay=0.0,
                        log_every=10, progress_bar=False, device="cpu", precision="fp32")
    Trainer(bilm, lines, collate, cfg).fit()
    rows = [json.loads(x) for x in (tmp_path / "elmo" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["forward_ce"] < rows[0]["forward_ce"] - 0.5
    assert rows[-1]["backward_ce"] < rows[0]["backward_ce"] - 0.5

    # frozen ELMo features + scalar mix under a softmax tagging head on real WNUT-16 tweets
    tweets = assets.wnut16()[:64]
    tags = sorted({t for _, ts in tweets for t in ts})
    tag_id = {t: i for i, t in enumerate(tags)}
    tagger = ElmoTagger(bilm, len(tags))
    before = [p.detach().clone() for p in bilm.parameters()]
    opt = torch.optim.Adam(tagger.parameters(), lr=1e-2)
    losses = []
    for step in range(30):
        batch = tweets[(step * 16) % 64:(step * 16) % 64 + 16]
        scores, mask = tagger([w for w, _ in batch])
        gold = torch.zeros(mask.shape, dtype=torch.long)
        for b, (_, ts) in enumerate(batch):
            gold[b, :len(ts)] = torch.tensor([tag_id[t] for t in ts])
        loss = F.cross_entropy(scores[mask], gold[mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3
    assert tagger.mix.scalars.grad is not None and tagger.mix.scalars.grad.abs().sum() > 0
    assert all(torch.equal(a, b) for a, b in zip(before, bilm.parameters()))  # the biLM stayed frozen
    assert {n.split(".")[0] for n, _ in tagger.named_parameters()} == {"mix", "out"}


def test_elmo_features_under_the_crf_tagger_and_the_classification_head():
    """ElmoWithHead: frozen ELMo + scalar mix under heads/' CRFTagger (WNUT-16 tweets, BIO constraints)
    and ClassificationHead (ULMFiT concat pooling over the word mask, BBC News articles); the mix and the head
    learn, the biLM stays frozen."""
    from transferlm.heads.classification import ClassificationHead
    from transferlm.heads.tagging import CRFTagger
    from transferlm.models.elmo import ElmoWithHead

    bilm = small_bilm(500)
    before = [p.detach().clone() for p in bilm.parameters()]

    def train(model, batches, loss_fn, steps=30):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        losses = []
        for step in range(steps):
            words, gold = batches[step % len(batches)]
            out, mask = model(words)
            loss = loss_fn(model.head, out, mask, gold)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses

    tweets = assets.wnut16()[:64]
    tags = sorted({t for _, ts in tweets for t in ts})
    tag_id = {t: i for i, t in enumerate(tags)}
    crf = ElmoWithHead(bilm, CRFTagger(2 * bilm.dim, len(tags), labels=tags, constraints="bio"))

    def crf_loss(head, em, mask, gold):
        labels = torch.full(mask.shape, -100)
        for b, ts in enumerate(gold):
            labels[b, :len(ts)] = torch.tensor([tag_id[t] for t in ts])
        return head.loss(em, labels)

    batches = [([w for w, _ in tweets[k:k + 16]], [ts for _, ts in tweets[k:k + 16]]) for k in range(0, 64, 16)]
    losses = train(crf, batches, crf_loss)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3
    em, mask = crf(batches[0][0])
    paths = crf.head.decode(em, mask)
    assert [len(p) for p in paths] == [len(w) for w in batches[0][0]]  # one tag per word

    articles = assets.bbc_news()[::60][:40]  # every class, 40 articles
    labels = sorted({y for _, y in articles})
    clf = ElmoWithHead(bilm, ClassificationHead(2 * bilm.dim, len(labels), pooling="concat"))
    docs = [(t.split()[:25 + 5 * (i % 8)], labels.index(y)) for i, (t, y) in enumerate(articles)]  # ragged: padding
    batches = [([w for w, _ in docs[k:k + 10]], torch.tensor([y for _, y in docs[k:k + 10]])) for k in range(0, 40, 10)]
    losses = train(clf, batches, lambda head, logits, mask, gold: F.cross_entropy(logits, gold), steps=80)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3
    clf.eval()
    logits, mask = clf(batches[0][0])
    assert logits.shape == (10, len(labels)) and mask.shape[0] == 10
    with torch.no_grad():  # the head pools over the words only: the word mask reaches it
        layers, m = bilm.features(batches[0][0])
        torch.testing.assert_close(logits, clf.head(clf.mix(layers), attention_mask=m))
        assert not torch.allclose(logits, clf.head(clf.mix(layers)))
    assert all(torch.equal(a, b) for a, b in zip(before, bilm.parameters()))  # the biLM stayed frozen
    assert {n.split(".")[0] for n, _ in clf.named_parameters()} == {"mix", "head"}
