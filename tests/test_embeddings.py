"""Contextual embeddings (embeddings/contextual.py) against transformers' BertModel on MiniLM.

The reference is computed as a user of transformers would: the HF tokenizer pads each batch of
the input (in input order) to its longest, BertModel runs, and the masked mean is taken by hand.
Ours runs our Encoder and tokenizer with length bucketing on, so the parity tests also prove that
the rows come back in input order.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transferlm.data import assets
from transferlm.embeddings import contextual as C

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_thread")  # small batches: one thread is faster, steadier


@pytest.fixture(scope="module")
def folder():
    return assets.path("minilm")


@pytest.fixture(scope="module")
def ours(folder):
    return C.load(folder)  # (Encoder, tokenizer)


@pytest.fixture(scope="module")
def ref(folder):
    model = transformers.BertModel.from_pretrained(folder).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    return model, tok


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """Real sentences of mixed length: PTB lines, BBC sentences, WNUT tweets, seeded shuffle."""
    rng = random.Random(6)
    ptb = [s.strip() for s in assets.ptb_text("valid").splitlines() if s.strip()]
    bbc = []
    for text, _ in assets.bbc_news()[::200]:
        bbc += [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.split()) > 3]
    tweets = [" ".join(toks) for toks, _ in assets.wnut16()]
    out = rng.sample(ptb, 14) + rng.sample(bbc, 14) + rng.sample(tweets, 12)
    rng.shuffle(out)
    return out


def _ref_hidden(ref, texts, **tok_kwargs):
    model, tok = ref
    b = tok(texts, padding=True, return_tensors="pt", **tok_kwargs)
    with torch.inference_mode():
        out = model(**b, output_hidden_states=True)
    return out, b["attention_mask"]


def _ref_mean(ref, texts, batch_size):
    rows = []
    for i in range(0, len(texts), batch_size):  # input order, each batch padded to its longest
        out, mask = _ref_hidden(ref, texts[i : i + batch_size])
        m = mask.unsqueeze(-1).float()
        rows.append(((out.last_hidden_state * m).sum(1) / m.sum(1)).numpy())
    return np.concatenate(rows)


def test_sentence_mean_parity_with_bucketing(ours, ref, sentences):
    model, tok = ours
    lengths = [len(e.ids) for e in C.encode(sentences, tok, 512)]
    assert len(set(lengths)) > 10  # the sample really mixes lengths
    batches = C.length_batches(lengths, 8)
    assert [i for b in batches for i in b] != list(range(len(sentences)))  # bucketing reorders
    assert C.padding_overhead(lengths, batches) < C.padding_overhead(
        lengths, [list(range(i, min(i + 8, len(lengths)))) for i in range(0, len(lengths), 8)])

    got = C.embed(sentences, model, tok, pooling="mean", batch_size=8)
    want = _ref_mean(ref, sentences, batch_size=8)
    assert got.shape == (len(sentences), 384) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # order matters: a permutation of the rows would not pass
    assert not np.allclose(got[::-1], want, atol=1e-3)


def test_cls_pooling_and_sentence_transformers_normalisation(ours, ref, sentences, folder):
    model, tok = ours
    texts = sentences[:10]
    out, _ = _ref_hidden(ref, texts)
    got_cls = C.embed(texts, model, tok, pooling="cls", batch_size=4)
    np.testing.assert_allclose(got_cls, out.last_hidden_state[:, 0].numpy(), atol=1e-5, rtol=0)

    st_kwargs = C.sentence_transformers_defaults(folder)
    assert st_kwargs == {"pooling": "mean", "normalize": True, "max_length": 256}
    got = C.embed(texts, model, tok, batch_size=4, **st_kwargs)
    want = _ref_mean(ref, texts, batch_size=4)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_last_four_layers_equal_mean_of_hidden_states_by_hand(ours, ref, sentences):
    model, tok = ours
    texts = sentences[:6]
    got = C.embed_tokens(texts, model, tok, layers="last4", batch_size=4)
    same = C.embed_tokens(texts, model, tok, layers="-4,-3,-2,-1", batch_size=4)
    out, mask = _ref_hidden(ref, texts)
    by_hand = (out.hidden_states[-4] + out.hidden_states[-3] + out.hidden_states[-2] + out.hidden_states[-1]) / 4
    for i, tv in enumerate(got):
        n = int(mask[i].sum())
        assert tv.vectors.shape == (n, 384)
        np.testing.assert_allclose(tv.vectors, by_hand[i, :n].numpy(), atol=1e-5, rtol=0)
        np.testing.assert_array_equal(tv.vectors, same[i].vectors)
    # and our own encoder's hidden states, one text at a time
    enc = tok.encode_batch([texts[0]], padding=None)[0]
    with torch.inference_mode():
        hs = model(torch.tensor([enc.ids]), output_hidden_states=True).hidden_states
    assert len(hs) == 7  # embedding output + 6 layers
    np.testing.assert_allclose(got[0].vectors, torch.stack(hs[-4:]).mean(0)[0].numpy(), atol=1e-5, rtol=0)
    # concat keeps each layer whole; a single index picks that layer alone
    cat = C.embed_tokens(texts[:1], model, tok, layers=[-2, -1], combine="concat")[0].vectors
    np.testing.assert_allclose(cat, torch.cat([hs[-2], hs[-1]], -1)[0].numpy(), atol=1e-5, rtol=0)
    emb = C.embed_tokens(texts[:1], model, tok, layers="embeddings")[0].vectors
    np.testing.assert_allclose(emb, hs[0][0].numpy(), atol=1e-5, rtol=0)


BANK = {
    "river": ["We sat on the grassy bank of the river and watched the water.",
              "The canoe drifted toward the muddy bank where the stream bends."],
    "money": ["She deposited her salary at the bank on Monday morning.",
              "The bank raised its interest rates on loans and savings accounts."],
}


def test_bank_contextual_vectors_tell_the_senses_apart_static_ones_do_not(ours, ref):
    model, tok = ours
    texts = BANK["river"] + BANK["money"]
    words = C.embed_words(texts, model, tok, word_pooling="first")
    vec = []
    for text, wv in zip(texts, words):
        assert wv.words.count("bank") == 1, (text, wv.words)
        vec.append(wv.vectors[wv.words.index("bank")])
    r1, r2, m1, m2 = vec
    same_river = C.cosine(r1, r2)
    same_money = C.cosine(m1, m2)
    across = max(C.cosine(r, m) for r in (r1, r2) for m in (m1, m2))
    assert same_river > across and same_money > across, (same_river, same_money, across)

    # The input embedding layer is a static, type-level table. Run our model's own word-embedding
    # module on each sentence's ids and read the vector at the position our offsets say is
    # "bank": it must equal transformers' word embeddings at the position its tokenizer gives
    # (so ids, offsets and the loaded table are all right), and the four occurrences coincide,
    # so river-vs-money similarity is 1.0 where the contextual vectors tell them apart.
    ref_model, ref_tok = ref
    static = []
    for text in texts:
        enc = tok.encode_batch([text], padding=None)[0]
        pos = [t for t, (s, e) in enumerate(enc.offsets) if enc.word_ids[t] is not None and text[s:e] == "bank"]
        assert len(pos) == 1
        with torch.no_grad():
            row = model.embeddings.word_embeddings(torch.tensor([enc.ids]))[0, pos[0]].numpy()  # (C,)
            r = ref_tok(text, return_offsets_mapping=True)
            ref_pos = [t for t, (s, e) in enumerate(r["offset_mapping"]) if e > s and text[s:e] == "bank"]
            ref_row = ref_model.embeddings.word_embeddings(torch.tensor([r["input_ids"]]))[0, ref_pos[0]].numpy()
        np.testing.assert_allclose(row, ref_row, atol=1e-6, rtol=0)
        static.append(row)
    static_across = max(C.cosine(static[i], static[j]) for i in (0, 1) for j in (2, 3))
    assert static_across == pytest.approx(1.0, abs=1e-6)
    assert across < 0.95  # while the contextual vectors of the two senses clearly differ


def test_word_pooling_first_and_mean_of_subwords(ours):
    model, tok = ours
    text = "Tokenization of unbelievably rare words"
    toks = C.embed_tokens([text], model, tok)[0]
    enc = tok.encode_batch([text], padding=None)[0]
    first = C.embed_words([text], model, tok, word_pooling="first")[0]
    mean = C.embed_words([text], model, tok, word_pooling="mean")[0]
    assert first.words == mean.words == ["Tokenization", "of", "unbelievably", "rare", "words"]
    assert first.spans[2] == (16, 28)
    for w in range(5):
        pos = [t for t, wid in enumerate(enc.word_ids) if wid == w]
        np.testing.assert_allclose(first.vectors[w], toks.vectors[pos[0]], atol=1e-6)
        np.testing.assert_allclose(mean.vectors[w], toks.vectors[pos].mean(0), atol=1e-6)
    assert len([wid for wid in enc.word_ids if wid == 0]) > 1  # "tokenization" is split into subwords
    assert not np.allclose(first.vectors[0], mean.vectors[0])


def test_pool_words_by_hand():
    x = torch.tensor([[9.0, 9.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [0.0, 0.0]])  # (T=5, C=2)
    word_ids = [None, 0, 0, 1, None]
    words, first = C.pool_words(x, word_ids, "first")
    assert words == [0, 1]
    assert first.tolist() == [[1.0, 2.0], [5.0, 6.0]]
    _, mean = C.pool_words(x, word_ids, "mean")
    assert mean.tolist() == [[2.0, 3.0], [5.0, 6.0]]
    with pytest.raises(ValueError, match="word pooling"):
        C.pool_words(x, word_ids, "max")


def test_mean_pool_ignores_padding_by_hand():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])  # (B=2, T=3, C=1)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert C.mean_pool(x, mask).tolist() == [[2.0], [4.0]]
    assert C.cls_pool(x).tolist() == [[1.0], [2.0]]


def test_truncation_keeps_sep_and_matches_hf(ours, ref, sentences):
    model, tok = ours
    long = max(sentences, key=len)
    toks = C.embed_tokens([long], model, tok, max_length=12)[0]
    assert len(toks.tokens) == 12 and toks.tokens[0] == "[CLS]" and toks.tokens[-1] == "[SEP]"
    out, _ = _ref_hidden(ref, [long], truncation=True, max_length=12)
    np.testing.assert_allclose(toks.vectors, out.last_hidden_state[0].numpy(), atol=1e-5, rtol=0)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 300), max_size=80), st.integers(1, 17), st.randoms(use_true_random=False))
def test_length_batches_partition_and_minimise_padding(lengths, batch_size, rnd):
    batches = C.length_batches(lengths, batch_size)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= 1
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)
    if lengths:  # never more padding than batching in input order, or in any shuffled order
        shuffled = list(range(len(lengths)))
        rnd.shuffle(shuffled)
        for order in (list(range(len(lengths))), shuffled):
            other = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
            assert C.padding_overhead(lengths, batches) <= C.padding_overhead(lengths, other) + 1e-12


def test_layer_specs_and_errors(ours):
    model, tok = ours
    assert C.parse_layers("last4") == (-4, -3, -2, -1)
    assert C.parse_layers(" -2, -1 ") == (-2, -1)
    assert C.resolve_layers("all", 7) == (1, 2, 3, 4, 5, 6)
    assert C.resolve_layers("-1", 7) == (6,)
    with pytest.raises(ValueError, match="comma-separated integers"):
        C.parse_layers("top")
    with pytest.raises(ValueError, match="this model has 6 layers"):
        C.embed(["a"], model, tok, layers=[7])
    with pytest.raises(ValueError, match="pooling must be"):
        C.embed(["a"], model, tok, pooling="max")
    with pytest.raises(TypeError, match="list of strings"):
        C.embed("one string", model, tok)
    assert C.embed([], model, tok).shape == (0, 384)
    assert C.embed([], model, tok, layers="last4", combine="concat").shape == (0, 4 * 384)
    with pytest.raises(FileNotFoundError, match="not an asset name"):
        C.resolve_model_path("/no/such/model")
