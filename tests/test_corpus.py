"""Corpus shards (data/corpus.py): reading formats, errors with file:line, shards, the NSP and
packed readers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferlm.data.corpus import NSPDataset, PackedDataset, TokenCorpus, build_corpus, iter_documents


class ToyTokenizer:
    """Whitespace words cut into pieces of at most 3 characters (so words have several pieces);
    ids from a growing vocabulary (0..4 reserved for specials)."""

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, texts):
        out = []
        for t in texts:
            ids, starts = [], []
            for w in t.split():
                for k in range(0, len(w), 3):
                    ids.append(self.vocab.setdefault(w[k:k + 3], 5 + len(self.vocab)))
                    starts.append(1 if k == 0 else 0)
            out.append((ids, starts))
        return out


def _write(path, text, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_documents_from_text_jsonl_and_folders(tmp_path):
    _write(tmp_path / "in" / "a.txt", "First doc. Second sentence!\nThird line\n\n\nDoc two only.\n")
    _write(tmp_path / "in" / "sub" / "b.jsonl", json.dumps({"text": "J one. J two.\nJ three"}) + "\n\n"
           + json.dumps({"text": "K"}) + "\n")
    docs = list(iter_documents([tmp_path / "in"]))
    assert [d.sentences for d in docs] == [["First doc.", "Second sentence!", "Third line"], ["Doc two only."],
                                           ["J one.", "J two.", "J three"], ["K"]]
    assert docs[1].source.endswith("a.txt:5") and docs[3].source.endswith("b.jsonl:3")
    lines = list(iter_documents([tmp_path / "in" / "a.txt"], sentence_split="line"))
    assert lines[0].sentences == ["First doc. Second sentence!", "Third line"]


def test_errors_name_file_and_line(tmp_path):
    bad = _write(tmp_path / "bad.txt", b"fine\nalso fine\n\xff\xfe broken\n", mode="wb")
    with pytest.raises(ValueError, match=r"bad\.txt:3: not valid UTF-8"):
        list(iter_documents([bad]))
    js = _write(tmp_path / "bad.jsonl", '{"text": "ok"}\n{"text": oops}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: bad JSON"):
        list(iter_documents([js]))
    nokey = _write(tmp_path / "nokey.jsonl", '{"body": "x"}\n')
    with pytest.raises(ValueError, match=r"nokey\.jsonl:1: expected a JSON object with a string 'text'"):
        list(iter_documents([nokey]))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        list(iter_documents([tmp_path / "missing.txt"]))
    with pytest.raises(FileNotFoundError, match="corpus.json"):
        TokenCorpus(tmp_path)


def _docs_text(n_docs=40, seed=0):
    rng = np.random.default_rng(seed)
    words = ["alpha", "be", "gamma", "delta", "epsilonic", "zeta", "eta", "thetas", "io", "kappa"]
    docs = []
    for d in range(n_docs):
        sents = [" ".join(rng.choice(words, rng.integers(2, 9))) + f" d{d}s{s}" for s in range(rng.integers(1, 9))]
        docs.append(sents)
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    docs = _docs_text()
    _write(tmp / "in.txt", "\n\n".join("\n".join(d) for d in docs) + "\n")
    tok = ToyTokenizer()
    c = build_corpus([tmp / "in.txt"], tmp / "out", tok, vocab_size=1000, sentence_split="line",
                     shard_tokens=97, batch_sentences=7, progress=False)
    return c, docs, tok


def test_shards_round_trip(corpus):
    c, docs, tok = corpus
    inv = {i: w for w, i in tok.vocab.items()}
    assert c.dtype == np.uint16 and c.num_documents == len(docs)
    assert len(c.meta["shards"]) > 3  # small shards: sentences and reads cross shard boundaries
    for d, sents in enumerate(docs):
        first, last = c.document_sentences(d)
        assert last - first == len(sents)
        for k, s in enumerate(sents):
            a, b = c.sentence_span(first + k, first + k + 1)
            ids, starts = c.tokens(a, b), c.word_starts(a, b)
            words, cur = [], ""
            for i, st in zip(ids, starts):
                if st and cur:
                    words.append(cur)
                    cur = ""
                cur += inv[int(i)]
            words.append(cur)
            assert " ".join(words) == s
    counts = c.unigram_counts()
    assert counts.sum() == c.num_tokens and counts[:5].sum() == 0


def test_uint32_when_the_vocabulary_is_large(tmp_path):
    _write(tmp_path / "t.txt", "a b c\n")
    c = build_corpus([tmp_path / "t.txt"], tmp_path / "o", lambda ts: [([70_000, 3], [1, 1]) for _ in ts],
                     vocab_size=70_001, progress=False)
    assert c.dtype == np.uint32 and c.tokens(0, 2).tolist() == [70_000, 3]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        build_corpus([tmp_path / "t.txt"], tmp_path / "o2", lambda ts: [([9], [1]) for _ in ts], vocab_size=5,
                     progress=False)


def _doc_of_sentence(c, s):
    return int(np.searchsorted(np.asarray(c.documents), s, side="right")) - 1


def test_nsp_examples(corpus):
    c, _, _ = corpus
    ds = NSPDataset(c, max_length=24, cls_id=2, sep_id=3, seed=0)
    n_random = 0
    for i in range(len(ds)):
        ex = ds[i]
        ids, types, special = ex["input_ids"], ex["token_type_ids"], ex["special_tokens_mask"]
        assert len(ids) <= 24
        seps = np.flatnonzero(ids == 3)
        assert ids[0] == 2 and len(seps) == 2 and seps[1] == len(ids) - 1
        assert seps[0] >= 2 and seps[1] - seps[0] >= 2, "A and B are never empty"
        assert (types[:seps[0] + 1] == 0).all() and (types[seps[0] + 1:] == 1).all()
        assert special.tolist() == [int(t in (0, seps[0], seps[1])) for t in range(len(ids))]
        assert (ex["word_ids"][special == 1] == -1).all()
        a_first, a_last, b_first, b_last, is_random = ds.plan[i]
        assert ex["next_sentence_label"] == is_random
        doc_a = _doc_of_sentence(c, a_first)
        assert _doc_of_sentence(c, a_last - 1) == doc_a
        if is_random:
            n_random += 1
            assert _doc_of_sentence(c, b_first) != doc_a, "a random B comes from another document"
        else:
            assert b_first == a_last and _doc_of_sentence(c, b_last - 1) == doc_a, "B is A's continuation"
    assert 0.3 < n_random / len(ds) < 0.7  # half, plus the one-sentence chunks that must be random
    # longest-first truncation keeps the two lengths within one token of each other when both are long
    a0, a1 = c.sentence_span(*ds.plan[0][:2])
    assert len(ds[0]["input_ids"]) == min(24, 3 + (a1 - a0) + np.subtract(*c.sentence_span(*ds.plan[0][2:4])[::-1]))


def test_nsp_is_deterministic_and_epochs_differ(corpus):
    c, _, _ = corpus
    a = NSPDataset(c, max_length=24, cls_id=2, sep_id=3, seed=0)
    b = NSPDataset(c, max_length=24, cls_id=2, sep_id=3, seed=0)
    assert np.array_equal(a.plan, b.plan)
    assert all(np.array_equal(a[i]["input_ids"], b[i]["input_ids"]) for i in range(len(a)))
    b.set_epoch(1)
    assert not np.array_equal(a.plan, b.plan)


def test_nsp_truncation_longest_first(tmp_path):
    # one document: A = 8 one-piece words, B = 3; 11 > 12 - 3, so two tokens go, both from A
    _write(tmp_path / "t.txt", " ".join(f"w{i}" for i in range(8)) + "\n" + "x y z\n")
    c = build_corpus([tmp_path / "t.txt"], tmp_path / "o", ToyTokenizer(), vocab_size=100, sentence_split="line",
                     progress=False)
    ds = NSPDataset(c, max_length=12, cls_id=2, sep_id=3, seed=0, short_seq_prob=0.0, random_next_prob=0.0)
    ex = ds[0]
    seps = np.flatnonzero(ex["input_ids"] == 3)
    assert len(ex["input_ids"]) == 12
    assert (seps[0] - 1, seps[1] - seps[0] - 1) == (6, 3), "only the longer segment (A) is trimmed"


def test_packed_blocks_are_the_joined_stream(corpus):
    c, _, _ = corpus
    ds = PackedDataset(c, block_size=16, doc_separator=1)
    stream = []
    for d in range(c.num_documents):
        a, b = c.sentence_span(*c.document_sentences(d))
        stream += c.tokens(a, b).tolist() + [1]
    assert len(ds) == len(stream) // 16
    got = np.concatenate([ds[i]["input_ids"] for i in range(len(ds))]).tolist()
    assert got == stream[:len(ds) * 16]
    ex = ds[3]
    assert ((ex["input_ids"] == 1) == (ex["special_tokens_mask"] == 1)).all()
    wrapped = PackedDataset(c, block_size=16, doc_separator=3, prefix=[2], suffix=[3])
    ex = wrapped[0]
    assert len(ex["input_ids"]) == 16 and ex["input_ids"][0] == 2 and ex["input_ids"][-1] == 3
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_real_wordpiece_matches_hf_tokenizers_on_ptb(tmp_path):
    """Built with our WordPiece tokenizer, the shards hold the ids HF `tokenizers` gives each sentence."""
    from transferlm.data import assets

    from tokenizers import Tokenizer as HFTokenizer

    from transferlm.tokenization.io import load_tokenizer

    folder = assets.path("minilm")
    ours = load_tokenizer(folder)
    lines = [ln.strip() for ln in assets.ptb_text("valid").splitlines() if ln.strip()][:300]
    _write(tmp_path / "ptb.txt", "\n".join(lines) + "\n")
    c = build_corpus([tmp_path / "ptb.txt"], tmp_path / "o", ours, vocab_size=ours.vocab_size,
                     sentence_split="line", progress=False)
    hf = HFTokenizer.from_file(str(folder / "tokenizer.json"))
    hf.no_padding()
    hf.no_truncation()
    for k, enc in enumerate(hf.encode_batch(lines, add_special_tokens=False)):
        a, b = c.sentence_span(k, k + 1)
        assert c.tokens(a, b).tolist() == enc.ids, lines[k]
        w = enc.word_ids
        assert c.word_starts(a, b).tolist() == [int(j == 0 or w[j] != w[j - 1]) for j in range(len(w))]


# ---- bad input leaves nothing half-written ----------------------------------------------------------

def test_empty_corpus_is_refused_and_leaves_nothing(tmp_path):
    empty = _write(tmp_path / "empty.txt", "\n   \n\n")
    out = tmp_path / "run" / "corpus"  # neither folder exists yet
    with pytest.raises(ValueError, match=r"no text found in .*empty\.txt"):
        build_corpus([empty], out, ToyTokenizer(), vocab_size=100, progress=False)
    assert not (tmp_path / "run").exists()  # the folders this call made are gone again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]


def test_bad_utf8_in_the_middle_leaves_nothing(tmp_path):
    good = _write(tmp_path / "a.txt", "one two three\n\nfour five\n")
    bad = _write(tmp_path / "b.txt", b"six seven\n\xc3\x28 eight\n", mode="wb")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"b\.txt:2: not valid UTF-8 \(byte 0xc3 at column 1\)"):
        build_corpus([good, bad], out, ToyTokenizer(), vocab_size=100, batch_sentences=1, progress=False)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_failed_rebuild_keeps_the_previous_corpus_and_rebuild_replaces_it(tmp_path):
    first = _write(tmp_path / "a.txt", "alpha beta gamma\n\ndelta\n")
    out = tmp_path / "out"
    c1 = build_corpus([first], out, ToyTokenizer(), vocab_size=100, shard_tokens=2, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "notes.txt").write_text("mine", encoding="utf-8")  # a file of the user's: never touched
    bad = _write(tmp_path / "bad.txt", b"\xff\n", mode="wb")
    with pytest.raises(ValueError, match="bad.txt:1"):
        build_corpus([bad], out, ToyTokenizer(), vocab_size=100, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "notes.txt"} == before
    assert TokenCorpus(out).num_tokens == c1.num_tokens
    # a successful rebuild with fewer shards leaves no shard of the old build behind
    second = _write(tmp_path / "b.txt", "zeta\n")
    c2 = build_corpus([second], out, ToyTokenizer(), vocab_size=100, shard_tokens=2, progress=False)
    assert c2.num_tokens == 2 and (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in out.glob("tokens_*.bin")) == ["tokens_00000.bin"]
