"""TextClassifier end to end on a small real BBC News slice and the pair fixture."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from transferlm.data import assets
from transferlm.data.formats import read_classification
from transferlm.pipelines import TextClassifier, load
from transferlm.tokenization.io import load_tokenizer

FIXTURES = "tests/fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bbc_split():
    data = assets.bbc_news()
    random.Random(0).shuffle(data)
    labels = sorted({lab for _, lab in data})
    per = {lab: [x for x in data if x[1] == lab] for lab in labels}
    train = [x for lab in labels for x in per[lab][:8]]
    test = [x for lab in labels for x in per[lab][8:18]]
    return labels, train, test


@pytest.fixture(scope="module")
def trained(bbc_split, tmp_path_factory):
    labels, train, _ = bbc_split
    clf = TextClassifier.new("minilm", labels=labels, max_length=64)
    out = tmp_path_factory.mktemp("bbc_run")
    hist = clf.fit([t for t, _ in train], [y for _, y in train], epochs=4, batch_size=8, lr=2e-4,
                   min_steps=20, progress=False, out_dir=str(out))
    return clf, hist, out


def test_learns_on_held_out_bbc(trained, bbc_split):
    clf, hist, out = trained
    _, _, test = bbc_split
    m = clf.evaluate([t for t, _ in test], [y for _, y in test])
    assert m["accuracy"] >= 0.7, m  # chance is 0.2 (5 balanced classes)
    assert m["macro_f1"] >= 0.6 and m["mcc"] >= 0.6
    assert (out / "metrics.jsonl").is_file() and (out / "checkpoints" / "latest").is_file()
    assert hist[-1]["step"] == 20 and "train_loss" in hist[-1]


def test_predict_shapes_and_scores(trained, bbc_split):
    clf, _, _ = trained
    texts = [t for t, _ in bbc_split[2][:5]]
    proba = clf.predict_proba(texts)
    assert proba.shape == (5, 5) and np.allclose(proba.sum(1), 1.0, atol=1e-5)
    pred = clf.predict(texts)
    assert [p["label"] for p in pred] == [clf.labels[i] for i in proba.argmax(1)]
    assert all(abs(p["score"] - q.max()) < 1e-6 for p, q in zip(pred, proba))


def test_save_load_identical_and_transformers_logits(trained, bbc_split, tmp_path):
    clf, _, _ = trained
    texts = [t for t, _ in bbc_split[2][:6]]
    folder = clf.save_pretrained(tmp_path / "clf")
    again = TextClassifier.from_pretrained(folder)
    assert again.labels == clf.labels
    assert np.array_equal(again.predict_proba(texts), clf.predict_proba(texts))
    assert load(folder).predict(texts) == clf.predict(texts)

    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert hf.config.id2label == dict(enumerate(clf.labels))
    encs = clf.tokenizer.encode_batch(texts, max_length=64, padding="longest")
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor([e.ids for e in encs]),
                 attention_mask=torch.tensor([e.attention_mask for e in encs]),
                 token_type_ids=torch.tensor([e.type_ids for e in encs])).logits
    ours = clf._logits(clf.features(texts))
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_pair_head_fits_fixture_and_pooling_options(tmp_path):
    ex = read_classification(f"{FIXTURES}/pairs.tsv", pairs=True)
    a, b, y = [e.text for e in ex], [e.text_b for e in ex], [e.label for e in ex]
    for pooling in ("cls", "concat"):
        clf = TextClassifier.new("minilm", labels=sorted(set(y)), pooling=pooling, max_length=32, pair=True)
        clf.fit(a, y, pairs=b, epochs=1, lr=3e-4, min_steps=15, progress=False)
        assert clf.evaluate(a, y, pairs=b)["accuracy"] == 1.0
        with pytest.raises(ValueError, match="pairs"):
            clf.predict(a)
    folder = clf.save_pretrained(tmp_path / "pair")
    again = TextClassifier.from_pretrained(folder)
    assert again.options.pooling == "concat" and again.task == "pair"
    assert np.array_equal(again.predict_proba(a, pairs=b), clf.predict_proba(a, pairs=b))


def test_new_from_encoder_instance_and_errors():
    from transferlm.models.encoder import Encoder

    folder = assets.path("minilm")
    enc, tok = Encoder.from_pretrained(folder), load_tokenizer(folder)
    clf = TextClassifier.new(enc, labels=["a", "b"], tokenizer=tok, pooling="mean", max_length=16)
    assert clf.encoder is enc
    with pytest.raises(ValueError, match="tokenizer"):
        TextClassifier.new(enc, labels=["a", "b"])
    with pytest.raises(KeyError, match="unknown label 'c'"):
        clf.evaluate(["x"], ["c"])
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        clf.features(["x", "y"], None, ["a"])
    with pytest.raises(TypeError, match="unknown option"):
        TextClassifier.new("minilm", labels=["a"], poolin="cls")
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        TextClassifier.new("/nonexistent/model", labels=["a"])


def test_freezing_and_schedule_options():
    ex = read_classification(f"{FIXTURES}/pairs.tsv", pairs=True)
    a, b, y = [e.text for e in ex], [e.text_b for e in ex], [e.label for e in ex]

    def fitted(min_steps=3, **opts):  # 3 examples: one batch per epoch
        clf = TextClassifier.new("minilm", labels=sorted(set(y)), max_length=24, pair=True)
        before = {k: v.clone() for k, v in clf.model.state_dict().items()}
        clf.fit(a, y, pairs=b, epochs=1, min_steps=min_steps, progress=False, **opts)
        after = clf.model.state_dict()
        return {k for k in before if not torch.equal(before[k], after[k])}

    changed = fitted(freeze="encoder")
    assert changed and all(k.startswith("head.") for k in changed)
    changed = fitted(freeze=2, schedule="slanted_triangular")
    assert any(k.startswith("encoder.layers.5.") for k in changed)
    assert not any(k.startswith(("encoder.layers.3.", "encoder.embeddings.")) for k in changed)
    changed = fitted(layerwise_lr_decay=0.8, gradual_unfreezing=True)  # ULMFiT: 3 epochs,
    layers = {k.split(".")[2] for k in changed if k.startswith("encoder.layers.")}  # 3 groups
    assert layers == {"4", "5"} and any(k.startswith("head.") for k in changed), changed
    assert not any(k.startswith("encoder.embeddings.") for k in changed)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_linear_probe_equals_sklearn_logistic_regression(bbc_split, pooling):
    """LP-FT's first step: the head becomes scikit-learn's L2 logistic regression (C=10) on the frozen
    encoder's pooled features; fine-tuning from it then keeps the held-out accuracy."""
    from sklearn.linear_model import LogisticRegression

    from transferlm.pipelines.base import encode_batch

    labels, train, test = bbc_split
    clf = TextClassifier.new("minilm", labels=labels, max_length=64, pooling=pooling)
    feats = clf.features([t for t, _ in train], None, [y for _, y in train])
    assert clf.linear_probe(feats) == 1.0  # 40 articles, 384 features: separable

    def pooled(batch):
        out = encode_batch(clf.encoder, batch)
        z = out.pooler_output if pooling == "cls" else clf.head.pool(out.last_hidden_state, batch["attention_mask"])
        return list(z)

    with torch.no_grad():
        z = torch.stack(clf.predict_batches(feats, pooled)).numpy()
    ref = LogisticRegression(C=10.0, tol=1e-8, max_iter=10_000).fit(z, [f["labels"] for f in feats])
    np.testing.assert_allclose(clf.head.proj.weight.detach().numpy(), ref.coef_, atol=2e-3)
    np.testing.assert_allclose(clf.head.proj.bias.detach().numpy(), ref.intercept_, atol=2e-3)
    probe_acc = clf.evaluate([t for t, _ in test], [y for _, y in test])["accuracy"]
    assert probe_acc > 0.6  # 50 held-out articles, 5 topics
