"""Tokenizer files (io.py): vocab.txt and tokenizer.json both ways, bad input, load_tokenizer."""

from __future__ import annotations

import json
import os

import pytest
from tokenizers import Tokenizer as HFTokenizer

from transferlm.data import assets
from transferlm.tokenization.corpus import iter_text_lines
from transferlm.tokenization.io import TokenizerFileError, atomic_write_text, load_tokenizer, read_json
from transferlm.tokenization.io.wordpiece import read_vocab_txt, wordpiece_to_hf_json, write_vocab_txt
from transferlm.tokenization.wordpiece import WordPieceTokenizer


@pytest.fixture(scope="module")
def minilm():
    return assets.path("minilm")


def _vocab_file(tmp_path, lines: list[str], name: str = "vocab.txt"):
    p = tmp_path / name
    p.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return p


# -- vocab.txt -----------------------------------------------------------------------------------

def test_read_minilm_vocab(minilm):
    v = read_vocab_txt(minilm / "vocab.txt", required=["[UNK]", "[CLS]"])
    assert len(v) == 30522 and v["[PAD]"] == 0 and v["[UNK]"] == 100 and v["[CLS]"] == 101 and v["##s"] == 2015


def test_duplicate_entry_names_file_and_both_lines(tmp_path):
    p = _vocab_file(tmp_path, ["[PAD]", "[UNK]", "the", "a", "the"])
    with pytest.raises(TokenizerFileError) as e:
        read_vocab_txt(p)
    msg = str(e.value)
    assert str(p) in msg and ":5:" in msg and "line 3" in msg and "'the'" in msg


def test_missing_special_token_names_file_and_token(tmp_path):
    p = _vocab_file(tmp_path, ["[PAD]", "the", "a"])
    with pytest.raises(TokenizerFileError) as e:
        read_vocab_txt(p, required=["[UNK]"])
    assert str(p) in str(e.value) and "'[UNK]'" in str(e.value)
    # Loading a folder needs [UNK] too.
    with pytest.raises(TokenizerFileError, match=r"\[UNK\]"):
        load_tokenizer(p)


def test_non_utf8_names_file_and_line(tmp_path):
    p = tmp_path / "vocab.txt"
    p.write_bytes(b"[PAD]\n[UNK]\ncaf\xe9\n")
    with pytest.raises(TokenizerFileError) as e:
        read_vocab_txt(p)
    assert f"{p}:3:" in str(e.value) and "UTF-8" in str(e.value) and "0xe9" in str(e.value)


def test_empty_line_and_missing_file(tmp_path):
    p = _vocab_file(tmp_path, ["[PAD]", "", "x"])
    with pytest.raises(TokenizerFileError, match=r"vocab.txt:2: empty line"):
        read_vocab_txt(p)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_vocab_txt(tmp_path / "nope.txt")


def test_write_vocab_round_trip_and_gaps(tmp_path):
    vocab = {"[PAD]": 0, "[UNK]": 1, "héllo": 2, "##x": 3}
    write_vocab_txt(tmp_path / "v.txt", vocab)
    assert read_vocab_txt(tmp_path / "v.txt") == vocab
    with pytest.raises(ValueError, match="id 1 is missing"):
        write_vocab_txt(tmp_path / "w.txt", {"a": 0, "b": 2})
    assert not (tmp_path / "w.txt").exists()
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []  # no temp file left behind


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")
    atomic_write_text(p, "new contents")
    assert p.read_text() == "new contents"


# -- training text -------------------------------------------------------------------------------------

def test_iter_text_lines_reports_bad_bytes(tmp_path):
    good, bad = tmp_path / "a.txt", tmp_path / "b.txt"
    good.write_text("one\ntwo\r\n", encoding="utf-8")
    bad.write_bytes(b"fine\nalso fine\nbad \xff\xfe here\n")
    assert list(iter_text_lines([good])) == ["one", "two"]
    with pytest.raises(TokenizerFileError) as e:
        list(iter_text_lines([good, bad]))
    assert f"{bad}:3:" in str(e.value) and "column 5" in str(e.value)
    with pytest.raises(TokenizerFileError, match=r"b.txt:3"):
        WordPieceTokenizer.train([good, bad], 100)


# -- tokenizer.json --------------------------------------------------------------------------------

def test_ours_loads_minilm_tokenizer_json(minilm):
    tok = load_tokenizer(minilm)
    assert isinstance(tok, WordPieceTokenizer)
    assert tok.vocab_size == 30522 and tok.model_max_length == 128
    assert tok.normalizer.lowercase and tok.special_tokens["sep"] == "[SEP]"
    same = load_tokenizer(minilm / "tokenizer.json")
    assert same.vocab == tok.vocab
    ref = HFTokenizer.from_file(str(minilm / "tokenizer.json"))
    ref.no_truncation()
    ref.no_padding()
    text = "The Quick brown fox, naïvely [MASK] jumping!"
    a, b = tok.encode(text, "second one"), ref.encode(text, "second one")
    assert a.ids == b.ids and a.offsets == [tuple(o) for o in b.offsets] and a.type_ids == b.type_ids


def test_written_tokenizer_json_matches_theirs(minilm, tmp_path):
    """Our tokenizer.json for MiniLM is the one tokenizers writes, but for the settings we do not
    keep (truncation and padding are arguments of encode here)."""
    ours = load_tokenizer(minilm)
    ours.save_pretrained(tmp_path)
    mine = read_json(tmp_path / "tokenizer.json")
    theirs = read_json(minilm / "tokenizer.json")
    for key in ("added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "model"):
        assert mine[key] == theirs[key], key
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8") == (minilm / "vocab.txt").read_text(encoding="utf-8")
    # tokenizers reads it back and encodes as we do.
    ref = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    lines = assets.ptb_text("test").splitlines()[:300]
    for text, o, r in zip(lines, ours.encode_batch(lines, padding=None), ref.encode_batch(lines)):
        assert o.ids == r.ids and o.offsets == [tuple(x) for x in r.offsets]


def test_cased_tokenizer_round_trip(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Hello", "hello", "é", "##s", "e"]
    from transferlm.tokenization.normalize import BertNormalizer

    tok = WordPieceTokenizer(vocab, normalizer=BertNormalizer(lowercase=False))
    tok.save_pretrained(tmp_path)
    ref = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for folder in (tmp_path, tmp_path / "tokenizer.json"):
        back = load_tokenizer(folder)
        for text in ["Hello hellos é", "HELLO é"]:
            assert back.encode(text).ids == tok.encode(text).ids == ref.encode(text).ids
    # vocab.txt + tokenizer_config.json alone keep the casing too.
    (tmp_path / "tokenizer.json").unlink()
    back = load_tokenizer(tmp_path)
    assert not back.normalizer.lowercase and back.encode("Hello").tokens == ["[CLS]", "Hello", "[SEP]"]


def test_non_special_added_token_round_trip(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "<b>", "##b"]
    added = {t: True for t in vocab[:5]} | {"<b>": False}
    tok = WordPieceTokenizer(vocab, added_tokens=added)
    tok.save_pretrained(tmp_path)
    ref = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    back = load_tokenizer(tmp_path)
    assert back.added_tokens == added
    for text in ["a<b>b [SEP] ab", "<b><b>"]:
        o, r = back.encode(text), ref.encode(text)
        assert o.ids == r.ids and o.offsets == [tuple(x) for x in r.offsets] and o.word_ids == r.word_ids
        assert back.decode(o.ids) == ref.decode(r.ids)  # keeps "<b>", drops [CLS]/[SEP]
    assert "<b>" in back.decode(back.encode("a<b>").ids)


def test_bad_tokenizer_json(tmp_path, minilm):
    obj = json.loads((minilm / "tokenizer.json").read_text(encoding="utf-8"))
    bad = dict(obj, pre_tokenizer={"type": "Whitespace"})
    (tmp_path / "tokenizer.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(TokenizerFileError,
                       match=r"tokenizer.json: pre_tokenizer is 'Whitespace'; expected 'BertPreTokenizer'"):
        load_tokenizer(tmp_path)
    bad = dict(obj, model=dict(obj["model"], type="Unigram"))
    (tmp_path / "tokenizer.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match="expected 'WordPiece' or 'BPE'"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "WordPiece",\n "vocab": [}', encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=r"tokenizer.json:2: invalid JSON"):
        load_tokenizer(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="expected tokenizer.json"):
        load_tokenizer(tmp_path / "empty")
    normalized = dict(obj, added_tokens=[dict(obj["added_tokens"][0], normalized=True)])
    (tmp_path / "tokenizer.json").write_text(json.dumps(normalized), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=r"normalized=true is not supported"):
        load_tokenizer(tmp_path)
    wrong_id = dict(obj, added_tokens=[dict(obj["added_tokens"][0], id=5)])
    (tmp_path / "tokenizer.json").write_text(json.dumps(wrong_id), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=r"added token '\[PAD\]' has id 5"):
        load_tokenizer(tmp_path)


def test_load_tokenizer_picks_bpe(tmp_path):
    from transferlm.tokenization.bpe import ByteLevelBPETokenizer

    text = tmp_path / "t.txt"
    text.write_text("low lower lowest newer wider\n" * 20, encoding="utf-8")
    bpe = ByteLevelBPETokenizer.train([text], 270, progress=False)
    bpe.save_pretrained(tmp_path / "bpe")
    back = load_tokenizer(tmp_path / "bpe")
    assert isinstance(back, ByteLevelBPETokenizer)
    assert back.encode("lowest wider").ids == bpe.encode("lowest wider").ids
    (tmp_path / "bpe" / "tokenizer.json").unlink()  # vocab.json + merges.txt alone
    assert isinstance(load_tokenizer(tmp_path / "bpe"), ByteLevelBPETokenizer)


def test_wordpiece_to_hf_json_is_json(minilm):
    """The object is JSON, and its content is a tokenizer: `tokenizers` built from it encodes real
    text (single texts and pairs) exactly as MiniLM's own tokenizer.json does and as we do; and a
    cased, accent-keeping tokenizer with its own added token comes through the same way."""
    ours = load_tokenizer(minilm)
    obj = wordpiece_to_hf_json(ours)
    assert json.loads(json.dumps(obj)) == obj
    from_ours = HFTokenizer.from_str(json.dumps(obj))
    theirs = HFTokenizer.from_file(str(minilm / "tokenizer.json"))
    theirs.no_truncation()
    theirs.no_padding()
    lines = [x for x in assets.ptb_text("valid").splitlines() if x.strip()][:200]
    lines += [t[:600] for t, _ in assets.bbc_news()[:50]] + [" ".join(t) for t, _ in assets.wnut16()[:100]]
    pairs = list(zip(lines[::2], lines[1::2]))
    want = theirs.encode_batch(lines) + theirs.encode_batch(pairs)
    got = from_ours.encode_batch(lines) + from_ours.encode_batch(pairs)
    mine = ours.encode_batch(lines) + ours.encode_batch([a for a, _ in pairs], [b for _, b in pairs])
    assert len(got) == len(want) == len(mine) == 350 + 175
    for g, w, m in zip(got, want, mine):
        assert g.ids == w.ids == m.ids and g.type_ids == w.type_ids == m.type_ids
        assert g.offsets == w.offsets and [tuple(x) for x in g.offsets] == m.offsets
    assert from_ours.decode(want[0].ids) == theirs.decode(want[0].ids) == ours.decode(want[0].ids)

    from transferlm.tokenization.normalize import BertNormalizer

    cased = WordPieceTokenizer.train_from_iterator(lines, 600, lowercase=False)
    vocab = dict(cased.vocab, **{"<news>": cased.vocab_size})  # an added token that is not special
    cased = WordPieceTokenizer(vocab, normalizer=BertNormalizer(lowercase=False, strip_accents=False),
                               special_tokens=cased.special_tokens,
                               added_tokens={**dict.fromkeys(cased.special_tokens.values(), True), "<news>": False})
    ref = HFTokenizer.from_str(json.dumps(wordpiece_to_hf_json(cased)))
    sample = lines[:100] + ["Naïve Café [SEP] MR. Mr.<news>mr. <news>"]
    for text, o, r in zip(sample, cased.encode_batch(sample), ref.encode_batch(sample)):
        assert o.ids == r.ids and o.offsets == [tuple(x) for x in r.offsets], text
    assert cased.encode(sample[-1]).tokens.count("<news>") == 2
    assert ref.decode(ref.encode(sample[-1]).ids) == cased.decode(cased.encode(sample[-1]).ids)
    assert cased.encode("Café").tokens != load_tokenizer(minilm).encode("Café").tokens  # really cased
