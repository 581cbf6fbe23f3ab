"""The shared post-processing (encoding.py): templates, truncation, overflow windows, padding.

Parity with Hugging Face `tokenizers` on real text (the MiniLM vocabulary; pairs of PTB / BBC
sentences), plus golden cases a person can check by hand on a toy vocabulary.
"""

from __future__ import annotations

import itertools
import random

import pytest
from tokenizers import Tokenizer as HFTokenizer

from transferlm.data import assets
from transferlm.tokenization.encoding import Encoding, Piece, Template, Tokenizer
from transferlm.tokenization.wordpiece import WordPieceTokenizer


@pytest.fixture(scope="module")
def minilm():
    return assets.path("minilm")


@pytest.fixture(scope="module")
def ours(minilm):
    return WordPieceTokenizer.from_pretrained(minilm)


@pytest.fixture(scope="module")
def ref(minilm):
    t = HFTokenizer.from_file(str(minilm / "tokenizer.json"))
    t.no_truncation()
    t.no_padding()
    return t


@pytest.fixture(scope="module")
def sample_pairs():
    rng = random.Random(0)
    lines = [x for x in assets.ptb_text("valid").splitlines() if x.strip()]
    bbc = [t for t, _ in assets.bbc_news()[:200]]
    texts = rng.sample(lines, 40) + [b[:rng.randint(50, 400)] for b in rng.sample(bbc, 20)]
    rng.shuffle(texts)
    return list(zip(texts[::2], texts[1::2]))


def _fields(e) -> dict:
    return {"ids": list(e.ids), "tokens": list(e.tokens), "offsets": [tuple(o) for o in e.offsets],
            "word_ids": list(e.word_ids), "type_ids": list(e.type_ids),
            "special_tokens_mask": list(e.special_tokens_mask), "attention_mask": list(e.attention_mask),
            "sequence_ids": list(e.sequence_ids)}


def _assert_same(o: Encoding, r) -> None:
    assert _fields(o) == _fields(r)
    assert [_fields(x) for x in o.overflowing] == [_fields(x) for x in r.overflowing]


# -- templates -----------------------------------------------------------------------------------

def test_template_parse_and_counts():
    t = Template.parse("[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1")
    assert t == Template.bert()
    assert t.num_special_tokens(False) == 2 and t.num_special_tokens(True) == 3
    assert t.special_tokens() == ["[CLS]", "[SEP]"]
    assert Piece.parse("$") == Piece("sequence", "A", 0)
    assert Piece.parse("$1") == Piece("sequence", "A", 1)
    assert Piece.parse("$b:1") == Piece("sequence", "B", 1)
    assert Template.none().num_special_tokens(True) == 0
    with pytest.raises(ValueError, match="must contain"):
        Template.parse("[CLS]", "$A $B")
    with pytest.raises(ValueError, match="type id"):
        Piece.parse("[SEP]:x")


def test_template_hf_json_round_trip(ref, ours):
    import json

    post = json.loads(ref.to_str())["post_processor"]
    t = Template.from_hf_json(post)
    assert t == Template.bert()
    assert t.to_hf_json(ours.token_to_id) == post
    assert Template.from_hf_json({"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}) == t
    assert Template.from_hf_json(None) == Template.none()
    with pytest.raises(ValueError, match="not supported"):
        Template.from_hf_json({"type": "Mystery"})


# -- golden cases on a toy vocabulary ---------------------------------------------------------------

@pytest.fixture(scope="module")
def toy():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "d", "e", "f", "g", "h"]
    return WordPieceTokenizer(vocab)


def test_single_and_pair_by_hand(toy):
    e = toy.encode("a b c")
    assert e.tokens == ["[CLS]", "a", "b", "c", "[SEP]"]
    assert e.type_ids == [0] * 5 and e.special_tokens_mask == [1, 0, 0, 0, 1]
    assert e.sequence_ids == [None, 0, 0, 0, None] and e.word_ids == [None, 0, 1, 2, None]
    assert e.offsets == [(0, 0), (0, 1), (2, 3), (4, 5), (0, 0)]
    p = toy.encode("a b", "c d e")
    assert p.tokens == ["[CLS]", "a", "b", "[SEP]", "c", "d", "e", "[SEP]"]
    assert p.type_ids == [0, 0, 0, 0, 1, 1, 1, 1]
    assert p.sequence_ids == [None, 0, 0, None, 1, 1, 1, None]
    assert p.word_ids == [None, 0, 1, None, 0, 1, 2, None]
    assert toy.encode("a b", add_special_tokens=False).tokens == ["a", "b"]


def test_windows_by_hand(toy):
    # 8 tokens, max_length 6 -> room 4 after [CLS]/[SEP]; stride 1 -> windows start at 0, 3, 6.
    e = toy.encode("a b c d e f g h", max_length=6, stride=1, return_overflowing=True)
    assert e.tokens == ["[CLS]", "a", "b", "c", "d", "[SEP]"]
    assert [o.tokens[1:-1] for o in e.overflowing] == [["d", "e", "f", "g"], ["g", "h"]]
    assert e.overflowing[1].offsets[1:3] == [(12, 13), (14, 15)]
    # Without return_overflowing the windows are dropped.
    assert toy.encode("a b c d e f g h", max_length=6).overflowing == []


def test_padding_by_hand(toy):
    e = toy.encode("a b", padding="max_length", pad_to=6)
    assert e.tokens == ["[CLS]", "a", "b", "[SEP]", "[PAD]", "[PAD]"]
    assert e.attention_mask == [1, 1, 1, 1, 0, 0] and e.special_tokens_mask == [1, 0, 0, 1, 1, 1]
    assert e.sequence_ids[-2:] == [None, None] and e.type_ids[-2:] == [0, 0]
    batch = toy.encode_batch(["a", "a b c"], padding="longest")
    assert [len(x) for x in batch] == [5, 5] and batch[0].attention_mask == [1, 1, 1, 0, 0]
    assert [len(x) for x in toy.encode_batch(["a", "a b c"], padding=True)] == [5, 5]  # transformers' spelling
    assert [len(x) for x in toy.encode_batch(["a", "a b c"])] == [3, 5]  # no padding unless asked
    assert [len(x) for x in toy.encode_batch(["a", "a b c"], padding=False)] == [3, 5]
    assert [len(x) for x in toy.encode_batch(["a", "a b c"], padding=None)] == [3, 5]
    assert [len(x) for x in toy.encode_batch(["a", "a b c"], padding="max_length", pad_to=7)] == [7, 7]


def test_bad_arguments(toy):
    with pytest.raises(ValueError, match="stride"):
        toy.encode("a b c d e", max_length=4, stride=2)
    with pytest.raises(ValueError, match="max_length"):
        toy.encode("a b c", max_length=2)
    with pytest.raises(ValueError, match="only_second"):
        toy.encode("a b c", max_length=3, truncation="only_second")
    with pytest.raises(ValueError, match="too short"):
        toy.encode("a", "b c d e f", max_length=5, truncation="only_first")
    with pytest.raises(ValueError, match="unknown truncation"):
        toy.encode("a b c", max_length=4, truncation="middle")
    with pytest.raises(ValueError, match="unknown truncation"):
        toy.encode("a", max_length=40, truncation="middle")  # even when nothing needs cutting
    with pytest.raises(ValueError, match="padding must be"):
        toy.encode_batch(["a"], padding="shortest")
    with pytest.raises(ValueError, match="stride must be"):
        toy.encode("a", stride=-1)
    with pytest.raises(ValueError, match="needs max_length or pad_to"):
        toy.encode("a", padding="max_length")
    with pytest.raises(TypeError):
        toy.encode_batch("a b")
    with pytest.raises(ValueError, match="pairs"):
        toy.encode_batch(["a"], ["b", "c"])


def test_no_pad_token_is_an_error():
    t = WordPieceTokenizer(["[UNK]", "[CLS]", "[SEP]", "a"])
    with pytest.raises(ValueError, match="pad"):
        t.encode("a", padding="max_length", pad_to=4)
    with pytest.raises(KeyError, match="pad"):
        t.special_token_id("pad")


def test_tokenizer_is_abstract():
    with pytest.raises(TypeError):
        Tokenizer()  # type: ignore[abstract]


# -- parity with tokenizers -----------------------------------------------------------------------

def test_pairs_parity(ours, ref, sample_pairs):
    a, b = zip(*sample_pairs)
    got = ours.encode_batch(list(a), list(b), padding=None)
    want = ref.encode_batch(list(zip(a, b)))
    for o, r in zip(got, want):
        _assert_same(o, r)


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
def test_truncation_and_overflow_parity(ours, ref, sample_pairs, strategy):
    checked = errors = 0
    lengths_strides = [(8, 0), (8, 2), (16, 5), (33, 7), (64, 16), (100, 30)]
    for (a, b), (max_length, stride) in itertools.product(sample_pairs[:12], lengths_strides):
        ref.enable_truncation(max_length, stride=stride, strategy=strategy)
        try:
            for text, pair in ((a, None), (a, b), (b, a)):
                if pair is None and strategy == "only_second":
                    continue
                try:
                    r = ref.encode(text, pair)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException:  # tokenizers: "too short" (an error) or "stride" (a Rust panic)
                    with pytest.raises(ValueError):
                        ours.encode(text, pair, max_length=max_length, truncation=strategy, stride=stride,
                                    return_overflowing=True)
                    errors += 1
                    continue
                o = ours.encode(text, pair, max_length=max_length, truncation=strategy, stride=stride,
                                return_overflowing=True)
                _assert_same(o, r)
                checked += 1
        finally:
            ref.no_truncation()
    assert checked >= 30 and errors >= 1  # both outcomes were compared


def test_truncation_without_special_tokens_parity(ours, ref, sample_pairs):
    ref.enable_truncation(10, stride=3)
    try:
        for a, b in sample_pairs[:8]:
            r = ref.encode(a, b, add_special_tokens=False)
            o = ours.encode(a, b, add_special_tokens=False, max_length=10, stride=3, return_overflowing=True)
            _assert_same(o, r)
    finally:
        ref.no_truncation()


def test_padding_parity(ours, ref, sample_pairs):
    texts = [a for a, _ in sample_pairs[:10]]
    ref.enable_padding(pad_id=0, pad_token="[PAD]")  # batch longest
    try:
        for o, r in zip(ours.encode_batch(texts, padding="longest"), ref.encode_batch(texts)):
            _assert_same(o, r)
        ref.enable_padding(pad_id=0, pad_token="[PAD]", length=40)
        ref.enable_truncation(40, stride=4)
        for text in texts:
            o = ours.encode(text, max_length=40, stride=4, return_overflowing=True, padding="max_length")
            _assert_same(o, ref.encode(text))
    finally:
        ref.no_padding()
        ref.no_truncation()


def test_encoding_lookups(ours):
    e = ours.encode("Hello world", "good night")
    assert e.char_to_token(7) == 2 and e.char_to_token(0, sequence_index=1) == 4
    assert e.word_to_tokens(1) == (2, 3) and e.word_to_tokens(1, sequence_index=1) == (5, 6)
    assert e.word_to_tokens(9) is None


# -- batches: no padding unless asked (issue 12), as tokenizers' encode_batch and transformers ------

def test_encode_batch_pads_only_when_asked_like_tokenizers(ours, ref):
    """Real text (PTB valid lines of different lengths): without padding our batch equals
    tokenizers' plain encode_batch (lengths differ); with padding="longest" it equals tokenizers
    after enable_padding() (BatchLongest), with padding="max_length" after enable_padding(length=)."""
    lines = [x for x in assets.ptb_text("valid").splitlines() if x.strip()][:64]
    plain = ours.encode_batch(lines)
    assert len({len(e) for e in plain}) > 10  # really different lengths, none padded
    assert all(sum(e.attention_mask) == len(e) for e in plain)
    for o, r in zip(plain, ref.encode_batch(lines)):
        _assert_same(o, r)
    ref.enable_padding(pad_id=ours.special_token_id("pad"), pad_token="[PAD]")
    try:
        padded = ours.encode_batch(lines, padding="longest")
        want = ref.encode_batch(lines)
        assert len({len(e) for e in padded}) == 1 and len(padded[0]) == max(len(e) for e in plain)
        for o, r in zip(padded, want):
            _assert_same(o, r)
        for o, r in zip(ours.encode_batch(lines, padding=True), want):  # transformers' spelling
            _assert_same(o, r)
        ref.enable_padding(pad_id=ours.special_token_id("pad"), pad_token="[PAD]", length=80)
        for o, r in zip(ours.encode_batch(lines, padding="max_length", pad_to=80), ref.encode_batch(lines)):
            _assert_same(o, r)
    finally:
        ref.no_padding()

