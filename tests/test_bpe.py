"""BPE learner and Jurafsky & Martin segmenter: the textbook golden example, the shared learner
against `tokenizers`' BpeTrainer, and file errors that name the file and line."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transferlm.tokenization.bpe import ByteLevelBPETokenizer
from transferlm.tokenization.corpus import count_byte_level_words
from transferlm.tokenization.io import BPEFileError
from transferlm.tokenization.io.bpe import read_merges_txt, read_vocab_json
from transferlm.tokenization.jurafsky_martin import JurafskyMartinBPE
from transferlm.tokenization.merges import learn_merges

JM_COUNTS = {"low": 5, "lowest": 2, "newer": 6, "wider": 3, "new": 2}
JM_MERGES = [("e", "r"), ("er", "_"), ("n", "e"), ("ne", "w"), ("l", "o"), ("lo", "w"), ("new", "er_"), ("low", "_")]


# ------------------------------------------------------------------------------------------------
# Jurafsky & Martin, 3rd ed., ch. 2 (the worked example of the BPE learner)


def test_jm_golden_merges_and_segmentation():
    bpe = JurafskyMartinBPE.learn(JM_COUNTS, num_merges=8)
    assert bpe.merges == JM_MERGES
    assert bpe.segment("lower") == ["low", "er_"]
    # Words of the training corpus come out whole after enough merges; an unseen letter stays alone.
    assert bpe.segment("newer") == ["newer_"]
    assert bpe.segment("low") == ["low_"]
    assert bpe.segment("wider") == ["w", "i", "d", "er_"]
    assert bpe.segment("lowz") == ["low", "z", "_"]


def test_jm_from_raw_text_equals_counts():
    text = " ".join(["low"] * 5 + ["lowest"] * 2 + ["newer"] * 6 + ["wider"] * 3 + ["new"] * 2)
    bpe = JurafskyMartinBPE.learn(text, num_merges=8)
    assert bpe.merges == JM_MERGES
    assert bpe.tokenize("lower newer") == ["low", "er_", "newer_"]


def test_jm_segmenter_applies_merges_in_learned_order():
    # With merges (b c) then (a b), "abc" becomes a + bc: the first merge eats the 'b' the second wanted.
    bpe = JurafskyMartinBPE([("b", "c"), ("a", "b")])
    assert bpe.segment("abc") == ["a", "bc", "_"]
    bpe = JurafskyMartinBPE([("a", "b"), ("b", "c")])
    assert bpe.segment("abc") == ["ab", "c", "_"]


def test_learner_counts_only_touched_words_correctly():
    # "aaaa": overlapping pairs are counted per window (3) and merged left to right into aa aa.
    # Then (a b) and (aa aa) both occur once: the smaller ids, (0, 1), win the tie.
    learned = learn_merges({("a", "a", "a", "a"): 1, ("a", "b"): 1}, ["a", "b"], num_merges=3)
    assert learned.merges == [("a", "a"), ("a", "b"), ("aa", "aa")]
    assert learned.vocab == ["a", "b", "aa", "ab", "aaaa"]


def test_learner_stops_and_validates():
    words = {("a", "b"): 3, ("c", "d"): 1}
    assert learn_merges(words, ["a", "b", "c", "d"], num_merges=10).merges == [("a", "b"), ("c", "d")]
    assert learn_merges(words, ["a", "b", "c", "d"], num_merges=10, min_frequency=2).merges == [("a", "b")]
    assert learn_merges(words, ["a", "b", "c", "d"], vocab_size=5).merges == [("a", "b")]
    with pytest.raises(ValueError, match="not in initial_vocab"):
        learn_merges(words, ["a", "b", "c"], num_merges=1)
    with pytest.raises(ValueError, match="num_merges or vocab_size"):
        learn_merges(words, ["a", "b", "c", "d"])


# ------------------------------------------------------------------------------------------------
# The shared learner ("ids" tie-break) against tokenizers' BpeTrainer on random corpora


def _tokenizers_merges(words: dict[str, int], vocab_size: int) -> tuple[list[tuple[str, str]], dict]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tr = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False)
    tk.train_from_iterator([" ".join([w] * n) for w, n in words.items()], tr)
    model = json.loads(tk.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return merges, model["vocab"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.dictionaries(st.text(alphabet="abcdé", min_size=1, max_size=9), st.integers(1, 6), min_size=1, max_size=14),
    extra=st.integers(1, 25),
)
def test_learner_equals_tokenizers_trainer(words, extra):
    alphabet = sorted({c for w in words for c in w})
    vocab_size = len(alphabet) + extra
    ref_merges, ref_vocab = _tokenizers_merges(words, vocab_size)
    learned = learn_merges({tuple(w): n for w, n in words.items()}, alphabet, vocab_size=vocab_size)
    assert {t: i for i, t in enumerate(learned.vocab)} == ref_vocab
    # tokenizers keeps merges in a map pair -> rank, so a pair learned twice keeps its last rank.
    ours = {m: r for r, m in enumerate(learned.merges)}
    assert sorted(ours, key=ours.get) == ref_merges


def test_byte_level_trainer_equals_tokenizers_on_ptb(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from transferlm.data import assets

    f = tmp_path / "ptb.txt"
    f.write_text(assets.ptb_text("train")[:400_000], encoding="utf-8")
    ours = ByteLevelBPETokenizer.train([f], vocab_size=1200, progress=False)
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tr = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<|endoftext|>"], show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train([str(f)], tr)
    model = json.loads(tk.to_str())["model"]
    ref_merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    assert ours.merges == ref_merges
    assert ours.vocab == model["vocab"]


# ------------------------------------------------------------------------------------------------
# Files: bad input names the file and the line


@pytest.fixture
def small_vocab(tmp_path):
    vocab = {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}
    p = tmp_path / "vocab.json"
    p.write_text(json.dumps(vocab), encoding="utf-8")
    return p, vocab


def test_merges_txt_reads(small_vocab, tmp_path):
    _, vocab = small_vocab
    m = tmp_path / "merges.txt"
    m.write_text("#version: 0.2\na b\nab c\n", encoding="utf-8")
    assert read_merges_txt(m, vocab) == [("a", "b"), ("ab", "c")]


def test_merges_unknown_symbol_names_file_and_line(small_vocab, tmp_path):
    _, vocab = small_vocab
    m = tmp_path / "merges.txt"
    m.write_text("#version: 0.2\na b\nab z\n", encoding="utf-8")
    with pytest.raises(BPEFileError, match=r"merges\.txt:3: merge 'ab' 'z' names 'z', which is not in the vocabulary"):
        read_merges_txt(m, vocab)
    m.write_text("a b\nb c\n", encoding="utf-8")  # 'bc' is not in the vocabulary
    with pytest.raises(BPEFileError, match=r"merges\.txt:2: .*'bc'"):
        read_merges_txt(m, vocab)


@pytest.mark.parametrize("line", ["a", "a b c", "a  b", " a b"])
def test_merges_malformed_line_names_file_and_line(small_vocab, tmp_path, line):
    _, vocab = small_vocab
    m = tmp_path / "merges.txt"
    m.write_text(f"#version: 0.2\na b\n{line}\n", encoding="utf-8")
    with pytest.raises(BPEFileError, match=r"merges\.txt:3: expected two symbols separated by one space"):
        read_merges_txt(m, vocab)


def test_non_utf8_names_file_and_line(small_vocab, tmp_path):
    p, vocab = small_vocab
    m = tmp_path / "merges.txt"
    m.write_bytes(b"#version: 0.2\na b\nab \xff\n")
    with pytest.raises(BPEFileError, match=r"merges\.txt:3: not valid UTF-8 \(byte 0xff at column 4\)"):
        read_merges_txt(m, vocab)
    v = tmp_path / "bad_vocab.json"
    v.write_bytes(b'{\n"a": 0,\n"\xc3(": 1}\n')
    with pytest.raises(BPEFileError, match=r"bad_vocab\.json:3: not valid UTF-8"):
        read_vocab_json(v)
    t = tmp_path / "corpus.txt"
    t.write_bytes(b"fine line\nanother\nbroken \xe9 latin-1\n")
    with pytest.raises(BPEFileError, match=r"corpus\.txt:3: not valid UTF-8"):
        count_byte_level_words([t])


def test_vocab_json_errors(tmp_path):
    v = tmp_path / "vocab.json"
    v.write_text('{"a": 0,\n "b": 1,\n "c" 2}', encoding="utf-8")
    with pytest.raises(BPEFileError, match=r"vocab\.json:3: invalid JSON"):
        read_vocab_json(v)
    v.write_text('{"a": 0, "b": "x"}', encoding="utf-8")
    with pytest.raises(BPEFileError, match=r"vocab\.json: token 'b' has id 'x'"):
        read_vocab_json(v)
    v.write_text('["a"]', encoding="utf-8")
    with pytest.raises(BPEFileError, match=r"vocab\.json:1: expected a JSON object"):
        read_vocab_json(v)


def test_from_vocab_merges_roundtrip(tmp_path):
    tok = ByteLevelBPETokenizer.train_from_counts({"ĠthÄĻ": 3, "Ġthe": 5, "the": 2}, vocab_size=262, special_tokens=["<s>"])
    tok.save_vocab_merges(tmp_path)
    again = ByteLevelBPETokenizer.from_vocab_merges(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert again.merges == tok.merges and again.vocab == tok.vocab
    assert again.encode(" the the").ids == tok.encode(" the the").ids
