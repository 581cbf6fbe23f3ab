"""CoVe (models/cove.py): a GloVe-input biLSTM encoder trained as a denoising seq2seq model on real
PTB sentences with the shared Trainer (no translation data exists here), its features
[GloVe(w); CoVe(w)] under a BBC News classifier."""

from __future__ import annotations

import json
import random

import numpy as np
import torch

from transferlm.data import assets
from transferlm.embeddings.vectors import load_glove_asset
from transferlm.models.cove import CoVe, DenoisingPairs, denoise
from transferlm.models.lstm import WordVocab, tokenize
from transferlm.training.trainer import Trainer, TrainerConfig


def test_denoise_noise_model():
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    for _ in range(20):
        out = denoise(words, rng)
        assert set(out) <= set(words) and len(out) >= 25
        kept = [w for w in words if w in out]
        assert all(abs(out.index(w) - kept.index(w)) <= 3 for w in out)  # local shuffle, k = 3
    assert out != kept or len(out) < 40


def test_cove_trains_on_ptb_and_its_features_classify_bbc(tmp_path):
    lines = [l.split() for l in assets.ptb_text("train").splitlines()[:600] if l.strip()]
    bbc = assets.bbc_news()
    docs = bbc[::11]  # 203 articles, all five classes (in label order: shuffle them)
    random.Random(0).shuffle(docs)
    words = {w for l in lines for w in l} | {w for t, _ in docs for w in tokenize(t, "words")}
    glove = load_glove_asset()
    index = {w: i for i, w in enumerate(glove.words)}
    rows = sorted(index[w] for w in words if w in index)  # the GloVe rows these texts reach
    sub = {glove.words[r]: i for i, r in enumerate(rows)}
    matrix = torch.tensor(np.asarray(glove.matrix)[rows], dtype=torch.float32)
    tgt = WordVocab.build([" ".join(l) for l in lines], max_size=1000)
    tgt_stoi = {w: i + 4 for i, w in enumerate(tgt.itos[2:])}  # 0 <unk>, 1 <bos>, 2 <eos>, 3 <pad>
    torch.manual_seed(0)
    model = CoVe(matrix, len(tgt_stoi) + 4, hidden=48)
    collate = DenoisingPairs(sub, model.unk_id, tgt_stoi, max_len=30)
    cfg = TrainerConfig(run_dir=str(tmp_path / "cove"), max_steps=30, batch_size=16, lr=3e-3, weight_decay=0.0,
                        log_every=10, progress_bar=False, device="cpu", precision="fp32")
    Trainer(model, lines, collate, cfg).fit()
    log = [json.loads(x) for x in (tmp_path / "cove" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] - 0.5

    # features: [GloVe(w); CoVe(w)], the first 50 dims are the GloVe vectors themselves
    model.eval()
    ids = torch.tensor([collate.source_ids("the market fell".split())])
    mask = torch.ones_like(ids, dtype=torch.bool)
    with torch.no_grad():
        f = model.features(ids, mask)
    assert f.shape == (1, 3, 50 + 96)
    torch.testing.assert_close(f[0, 1, :50], torch.tensor(np.asarray(glove.matrix)[index["market"]]))

    # a classification run on real articles: mean-pooled [GloVe; CoVe] + logistic regression
    from sklearn.linear_model import LogisticRegression

    def pooled(texts):
        out = []
        with torch.no_grad():
            for t in texts:
                ids = torch.tensor([collate.source_ids(tokenize(t, "words")[:200])])
                out.append(model.features(ids, torch.ones_like(ids, dtype=torch.bool))[0].mean(0).numpy())
        return np.stack(out)

    X = pooled([t for t, _ in docs])
    y = [lab for _, lab in docs]
    clf = LogisticRegression(C=10, max_iter=2000).fit(X[:120], y[:120])
    acc = clf.score(X[120:], y[120:])
    assert acc >= 0.7, acc  # five classes: chance 0.2
