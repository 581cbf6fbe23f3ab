"""Byte-level BPE against the references: SmolLM2's GGUF tokenizer (transformers / tokenizers) on
real text and on arbitrary Unicode, a GPT-2-style trained tokenizer through tokenizer.json, and
the file formats."""

from __future__ import annotations

import json
import unicodedata
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transferlm.data import assets
from transferlm.tokenization.added import AddedToken
from transferlm.tokenization.bpe import ByteLevelBPETokenizer
from transferlm.tokenization.bytelevel import LLAMA3_PATTERN, bytes_to_unicode, to_byte_symbols
from transferlm.tokenization.encoding import Template


@pytest.fixture(scope="module")
def smol():
    return ByteLevelBPETokenizer.from_gguf(assets.path("smollm2"))


@pytest.fixture(scope="module")
def hf_gguf():
    """transformers' tokenizer for the same GGUF file (offline, from the local file)."""
    from transformers import AutoTokenizer

    p = assets.path("smollm2")
    return AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)


@pytest.fixture(scope="module")
def ref_smol(hf_gguf):
    """The `tokenizers` Tokenizer transformers builds, with SmolLM2's own pre-tokenizer.

    transformers 5.23 has no GGUF entry for pre="smollm" and keeps GPT-2's ByteLevel split;
    SmolLM2's tokenizer.json (and llama.cpp) split digits first: Digits(individual) + ByteLevel.
    Its post-processor is dropped so that offsets are untrimmed (trim_offsets=False) and no
    special tokens are added, which is what `_encode_text` returns.
    """
    from tokenizers import Tokenizer, pre_tokenizers

    tk = Tokenizer.from_str(hf_gguf.backend_tokenizer.to_str())
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tk.post_processor = None
    return tk


@pytest.fixture(scope="module")
def real_texts():
    ptb_train = assets.ptb_text("train").split("\n")
    texts = assets.ptb_text("valid").split("\n") + assets.ptb_text("test").split("\n") + ptb_train[::20]
    texts += [t for t, _ in assets.bbc_news()]
    texts += [" ".join(toks) for toks, _ in assets.wnut16()]
    return texts


def _ours(tok, texts):
    return [tok.encode(t, add_special_tokens=False) for t in texts]


def test_byte_map_is_gpt2s():
    from transformers.convert_slow_tokenizer import bytes_to_unicode as hf_map

    assert bytes_to_unicode() == hf_map()
    assert to_byte_symbols("a b\n\u00e9") == "aĠbĊÃ©"


def test_gguf_metadata(smol):
    assert smol.vocab_size == 49152
    assert len(smol.merges) == 48900
    assert smol.pattern_name == "smollm"  # tokenizer.ggml.pre = "smollm"
    assert smol.special_tokens == {"bos": "<|im_start|>", "eos": "<|im_end|>", "pad": "<|im_end|>", "unk": "<|endoftext|>"}
    assert smol.added_tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert len(smol.added_tokens) == 17  # the 17 tokens of type CONTROL
    assert smol.template == Template.none()  # add_bos_token = false


def test_parity_real_text_ids_offsets_words(smol, ref_smol, real_texts):
    """Every line of PTB valid+test, every 20th of PTB train, all BBC articles, all WNUT tweets."""
    refs = ref_smol.encode_batch(real_texts, add_special_tokens=False)
    ours = _ours(smol, real_texts)
    bad = [i for i, (r, o) in enumerate(zip(refs, ours))
           if r.ids != o.ids or [tuple(x) for x in r.offsets] != o.offsets or r.word_ids != o.word_ids]
    assert not bad, (len(bad), real_texts[bad[0]][:200])
    assert sum(len(o) for o in ours) > 1_000_000  # it really ran over the corpora


def test_parity_with_transformers_gguf_loader(smol, hf_gguf, real_texts):
    """transformers' AutoTokenizer on the GGUF file, exactly as it loads it (GPT-2 split)."""
    ours = ByteLevelBPETokenizer(smol.vocab, smol.merges, pattern="gpt2", added_tokens=smol.added_token_objects(),
                                 special_tokens=smol.special_tokens, template=smol.template)
    texts = real_texts[::10] + ["a  1 x\t 2 <|im_start|>user\nhi<|im_end|>", "2024-01-01  12:30"]
    ref_ids = hf_gguf(texts, add_special_tokens=True)["input_ids"]
    assert [e.ids for e in (ours.encode(t) for t in texts)] == ref_ids


def test_smollm_split_differs_from_gpt2_only_before_digits(smol, hf_gguf):
    # Two spaces before a digit: SmolLM2 keeps the run whole ("ĠĠ"), GPT-2's regex leaves the last
    # space to prefix " 1", which then cannot merge (SmolLM2 learned no digit merges).
    assert smol.encode("a  1").tokens == ["a", "ĠĠ", "1"]
    assert hf_gguf.backend_tokenizer.encode("a  1", add_special_tokens=False).tokens == ["a", "Ġ", "Ġ", "1"]
    assert smol.encode("2024").tokens == ["2", "0", "2", "4"]


def test_special_tokens_in_text_and_decode(smol, ref_smol):
    text = "<|im_start|>user\nCafé 😀<|im_end|>\n<|im_start|>assistant\n"
    enc = smol.encode(text)
    ref = ref_smol.encode(text, add_special_tokens=False)
    assert enc.ids == ref.ids and enc.word_ids == ref.word_ids
    assert enc.offsets == [tuple(x) for x in ref.offsets]
    assert enc.ids[0] == 1 and enc.tokens[0] == "<|im_start|>" and enc.offsets[0] == (0, 12)
    assert smol.decode(enc.ids, skip_special_tokens=False) == text
    assert smol.decode(enc.ids) == ref_smol.decode(enc.ids, skip_special_tokens=True) == "user\nCafé 😀\nassistant\n"
    # A token holding part of a character: each piece gets the whole character's offsets.
    enc = smol.encode("x𝔘")
    assert len(enc.ids) > 2 and all(o == (1, 2) for o in enc.offsets[1:])


def test_base_class_pairs_and_padding(smol):
    enc = smol.encode("hello world", "second one", max_length=4, return_overflowing=True)
    assert len(enc) == 4 and enc.type_ids == [0, 0, 1, 1]
    batch = smol.encode_batch(["a", "a b c"], padding="longest")
    assert [len(e) for e in batch] == [3, 3] and batch[0].ids[1:] == [2, 2]  # pad = <|im_end|>, id 2
    llama_style = smol._template_for(add_bos=True, add_eos=False)
    smol2 = ByteLevelBPETokenizer(smol.vocab, smol.merges, pattern="smollm", added_tokens=smol.added_token_objects(),
                                  special_tokens=smol.special_tokens, template=llama_style)
    assert smol2.encode("hi").ids == [1] + smol.encode("hi").ids


_PIECES = ["<|im_start|>", "<|endoftext|>", "😀", "👩‍👩‍👧", " ", "  ", "\t", "\n", "\r\n", "12", " 3", "é", "e\u0301",
           "世界", "'s", "'LL", "\x00", "\x1c", "\u00a0", "\u3000", "\u2028", "ab", " Hello", "!!", "\ufffd", "\U0010ffff"]


# Characters assigned in Python's Unicode (14.0): the `regex` module's tables are Unicode 17 and
# tokenizers 0.23's are Unicode 16, so a character first assigned in Unicode 17 (CJK Extension J,
# ...) is a letter for us and not for the reference; everything older agrees.
_ASSIGNED = st.characters(exclude_categories=("Cs", "Cn"))
_TEXT = st.one_of(
    st.text(_ASSIGNED, max_size=40),
    st.lists(st.sampled_from(_PIECES), max_size=12).map("".join),
    st.lists(st.one_of(st.text(_ASSIGNED, max_size=4), st.sampled_from(_PIECES)), max_size=10).map("".join),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEXT)
def test_arbitrary_unicode_same_as_reference_and_round_trips(smol, ref_smol, text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bytes SmolLM2 cannot spell are dropped with a warning
        enc = smol.encode(text)
    ref = ref_smol.encode(text, add_special_tokens=False)
    assert enc.ids == ref.ids
    assert enc.offsets == [tuple(x) for x in ref.offsets]
    assert enc.word_ids == ref.word_ids
    if all(c in smol.vocab for c in to_byte_symbols(text)):
        assert smol.decode(enc.ids, skip_special_tokens=False) == text


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_smollm_regex_is_digits_then_gpt2(text):
    """SMOLLM_PATTERN folds Digits(individual_digits) + the GPT-2 regex into one regex."""
    import regex

    from transferlm.tokenization.bytelevel import GPT2_PATTERN, SMOLLM_PATTERN

    two_step = []
    for part in regex.split(r"(\p{N})", text):  # each digit alone, the stretches between kept
        two_step += regex.findall(GPT2_PATTERN, part)
    assert regex.findall(SMOLLM_PATTERN, text) == two_step


def test_bytes_missing_from_vocab_are_dropped_loudly(smol, ref_smol):
    # SmolLM2 has no token for the byte 0x04 (nor for 0xf1, the lead byte of U+40000..U+7FFFF).
    before = smol.dropped_bytes
    with pytest.warns(UserWarning, match="no token for byte"):
        enc = smol.encode("a\x04b\U00050000:")
    ref = ref_smol.encode("a\x04b\U00050000:", add_special_tokens=False)
    assert enc.ids == ref.ids and enc.word_ids == ref.word_ids
    # tokenizers counts offsets over the kept tokens, so ':' after the dropped 0xf1 shifts left.
    assert enc.offsets == [tuple(x) for x in ref.offsets] == [(0, 1), (2, 3), (3, 4), (3, 4), (3, 4), (3, 4)]
    assert smol.dropped_bytes == before + 2


def test_empty_and_type_errors(smol):
    assert smol.encode("").ids == []
    assert smol.decode([]) == ""
    with pytest.raises(TypeError):
        smol.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        smol.decode([10**9])
    with pytest.raises(ValueError, match="lone surrogate"):
        smol.encode("ab\ud800c")


def test_hf_json_round_trip_of_gguf_tokenizer(smol, real_texts):
    """Ours -> tokenizer.json -> tokenizers gives the same ids; and from_hf_json reads it back."""
    from tokenizers import Tokenizer

    obj = smol.to_hf_json()
    tk = Tokenizer.from_str(json.dumps(obj))
    texts = real_texts[::50] + ["a  1 <|im_end|>x"]
    refs = tk.encode_batch(texts)
    ours = _ours(smol, texts)
    assert [r.ids for r in refs] == [o.ids for o in ours]
    assert [[tuple(x) for x in r.offsets] for r in refs] == [o.offsets for o in ours]
    again = ByteLevelBPETokenizer.from_hf_json(obj)
    assert again.vocab == smol.vocab and again.merges == smol.merges and again.pattern_name == "smollm"
    assert again.added_tokens == smol.added_tokens


def test_from_hf_json_of_reference(hf_gguf):
    obj = json.loads(hf_gguf.backend_tokenizer.to_str())  # merges as [a, b] lists, ByteLevel split
    tok = ByteLevelBPETokenizer.from_hf_json(obj)
    assert tok.pattern_name == "gpt2"
    text = "The quick brown fox, 2 times!"
    assert tok.encode(text).ids == hf_gguf(text)["input_ids"]
    obj["model"]["merges"] = [" ".join(m) for m in obj["model"]["merges"]]  # the older "a b" spelling
    assert ByteLevelBPETokenizer.from_hf_json(obj).merges == tok.merges
    obj["model"]["merges"][5] = "Ġt nosuchsymbol"
    with pytest.raises(ValueError, match=r"model\.merges\[5\]: 'nosuchsymbol' is not in the vocabulary"):
        ByteLevelBPETokenizer.from_hf_json(obj)


def test_llama3_split_matches_tokenizers(smol, real_texts):
    """The Llama-3 regex through tokenizers' Split(isolated) + ByteLevel(use_regex=False)."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers

    ours = ByteLevelBPETokenizer(smol.vocab, smol.merges, pattern="llama3", added_tokens=smol.added_token_objects())
    tk = Tokenizer.from_str(json.dumps(smol.to_hf_json()))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    texts = real_texts[::40] + ["I'LL do 12345 things\r\n\r\n  ok", "x  \n\n y's"]
    assert [o.ids for o in _ours(ours, texts)] == [r.ids for r in tk.encode_batch(texts)]
    assert json.loads(json.dumps(ours.to_hf_json()))["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == LLAMA3_PATTERN


# ------------------------------------------------------------------------------------------------
# GPT-2-style: train on PTB, write tokenizer.json, load it with tokenizers


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("bpe")
    f = d / "ptb_train.txt"
    f.write_text(assets.ptb_text("train")[:600_000], encoding="utf-8")
    return ByteLevelBPETokenizer.train([f], vocab_size=1500, special_tokens=["<|endoftext|>", "<pad>"], progress=False), d


@pytest.fixture(scope="module")
def trained_ref(trained):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json.dumps(trained[0].to_hf_json()))


def test_trained_tokenizer_json_loads_in_tokenizers(trained):
    from tokenizers import Tokenizer

    tok, d = trained
    assert tok.vocab_size == 1500 and tok.token_to_id("<|endoftext|>") == 0 and tok.token_to_id("<pad>") == 1
    tok.save_pretrained(d / "out")
    ref = Tokenizer.from_file(str(d / "out" / "tokenizer.json"))
    held_out = assets.ptb_text("valid").split("\n")[:1500] + ["<pad> unseen wörds 😀 <|endoftext|>"]
    refs = ref.encode_batch(held_out)
    ours = _ours(tok, held_out)
    assert [r.ids for r in refs] == [o.ids for o in ours]
    assert [[tuple(x) for x in r.offsets] for r in refs] == [o.offsets for o in ours]
    # Also the vocab.json + merges.txt pair, through tokenizers' own reader.
    from tokenizers import models, pre_tokenizers

    bpe = Tokenizer(models.BPE.from_file(str(d / "out" / "vocab.json"), str(d / "out" / "merges.txt")))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert [e.ids for e in bpe.encode_batch(held_out[:200])] == [o.ids for o in ours[:200]]
    # Decoding is exact, and from_pretrained gives the same tokenizer back.
    assert all(tok.decode(o.ids, skip_special_tokens=False) == t for o, t in zip(ours, held_out))
    again = ByteLevelBPETokenizer.from_pretrained(d / "out")
    assert again.vocab == tok.vocab and again.merges == tok.merges and again.special_tokens == tok.special_tokens
    assert again.encode(held_out[3]).ids == ours[3].ids


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=40), _TEXT))
def test_trained_full_byte_alphabet_round_trips_anything(trained, trained_ref, text):
    """A tokenizer with all 256 bytes encodes any string losslessly (unassigned code points and
    all), with tokenizers' ids where both use the same Unicode version."""
    tok, _ = trained
    enc = tok.encode(text)
    assert tok.decode(enc.ids, skip_special_tokens=False) == text
    if any(unicodedata.category(c) == "Cn" for c in text):
        return
    ref = trained_ref.encode(text)
    assert enc.ids == ref.ids and enc.offsets == [tuple(x) for x in ref.offsets]


def test_saved_folder_loads_in_transformers(trained, tmp_path):
    from transformers import AutoTokenizer

    tok, _ = trained
    tok.save_pretrained(tmp_path)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    text = "the company said <|endoftext|> profits rose 12 %"
    assert hf(text)["input_ids"] == tok.encode(text).ids
    assert hf.eos_token == "<|endoftext|>"


def test_add_tokens_are_kept_whole(trained):
    tok, _ = trained
    tok = ByteLevelBPETokenizer(tok.vocab, tok.merges, added_tokens=tok.added_token_objects())
    assert tok.add_tokens(["<sep>", "<|endoftext|>"]) == 1
    i = tok.token_to_id("<sep>")
    assert i == 1500 and tok.vocab_size == 1501
    enc = tok.encode("a<sep>b")
    assert enc.ids[1] == i and enc.offsets[1] == (1, 6)
    assert tok.decode(enc.ids) == "a<sep>b"  # not special: kept by decode


def test_from_pretrained_vocab_merges_only(trained, tmp_path):
    tok, _ = trained
    tok.save_vocab_merges(tmp_path)
    again = ByteLevelBPETokenizer.from_pretrained(tmp_path)
    text = "the market fell 3 % in new york"
    assert again.encode(text).ids == tok.encode(text).ids
    with pytest.raises(FileNotFoundError, match="expected tokenizer.json, or vocab.json and merges.txt"):
        ByteLevelBPETokenizer.from_pretrained(tmp_path / "nothing")


def test_constructor_rejects_inconsistent_vocab():
    vocab = {c: i for i, c in enumerate(sorted(bytes_to_unicode().values()))}
    with pytest.raises(ValueError, match="merge 0 .* not in the vocabulary"):
        ByteLevelBPETokenizer(vocab, [("a", "b")])
    with pytest.raises(ValueError, match="wants id 0"):
        ByteLevelBPETokenizer(vocab, [], added_tokens=[AddedToken("<s>", 0)])
    tok = ByteLevelBPETokenizer({"a": 0, "b": 1, "ab": 2}, [("a", "b")])
    with pytest.warns(UserWarning, match="no token for byte.*0x63"):
        assert tok.encode("abc").ids == [2]
    assert tok.dropped_bytes == 1


def test_encode_batch_pads_only_when_asked_like_tokenizers(smol, real_texts):
    """Issue 12: encode_batch used to pad by default, so a vocabulary without a "pad" token
    (GPT-2 style) raised "no 'pad' special token" where tokenizers' encode_batch just encodes.
    Now: no padding unless asked, equal to tokenizers' encode_batch on real text; with padding,
    equal to tokenizers after enable_padding()."""
    from tokenizers import Tokenizer

    texts = real_texts[:40]
    no_pad = ByteLevelBPETokenizer(smol.vocab, smol.merges, pattern="smollm", added_tokens=smol.added_token_objects())
    assert "pad" not in no_pad.special_tokens
    ref = Tokenizer.from_str(json.dumps(no_pad.to_hf_json()))
    ours = no_pad.encode_batch(texts)
    refs = ref.encode_batch(texts)
    assert len({len(e) for e in ours}) > 10
    assert [e.ids for e in ours] == [r.ids for r in refs]
    assert [e.attention_mask for e in ours] == [r.attention_mask for r in refs]
    with pytest.raises(ValueError, match="no 'pad' special token"):
        no_pad.encode_batch(texts, padding="longest")
    # SmolLM2's own roles have pad = <|im_end|>: padding to the longest, as tokenizers pads.
    pad = smol.special_token_id("pad")
    ref.enable_padding(pad_id=pad, pad_token=smol.special_tokens["pad"])
    padded = smol.encode_batch(texts, padding="longest")
    refs = ref.encode_batch(texts)
    assert len({len(e) for e in padded}) == 1
    for o, r in zip(padded, refs):
        assert o.ids == r.ids and o.attention_mask == r.attention_mask
        assert o.special_tokens_mask == r.special_tokens_mask and o.offsets == [tuple(x) for x in r.offsets]


# ------------------------------------------------------------------------------------------------
# The fast paths of encoding (issue 12): the ASCII twin of each pre-split regex, the pre-token
# cache (hit and miss paths build the same lists), pairs that occur more than once in a piece,
# pieces whose bytes are all dropped, and custom patterns that leave gaps.

_ASCII = st.text(st.sampled_from([chr(i) for i in range(128)]), max_size=40)
_ASCII_PIECES = st.lists(st.sampled_from(
    ["aaaa", "aaaaa", "abab", "ababab", "----", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x04",
     "\x04\x04", "'s", "'S", "'ll", "'LL", " the", "The", "123", " 45", "x", "!!", "==", "...", " \x04 "]),
    max_size=12).map("".join)


_LATIN1 = st.text(st.sampled_from([chr(i) for i in range(256)]), max_size=40)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_ASCII, _ASCII_PIECES, _LATIN1))
def test_latin1_twins_split_as_the_patterns(text):
    """bytelevel.latin1_pattern: the standard-`re` twin of each shipped pattern gives the same
    pieces as the `regex` original on text below U+0100 (\\s is Unicode White_Space there, not
    0x1c-0x1f; \\p{N} has the superscripts and fractions)."""
    import regex

    from transferlm.tokenization.bytelevel import PATTERNS, latin1_pattern

    for pattern in PATTERNS.values():
        assert latin1_pattern(pattern).findall(text) == regex.findall(pattern, text)
    assert latin1_pattern(r"\w+|\s") is None  # a custom pattern keeps `regex`


@pytest.fixture(scope="module")
def smol_cached_and_not(smol):
    cached = ByteLevelBPETokenizer(smol.vocab, smol.merges, pattern="smollm", added_tokens=smol.added_token_objects())
    no_cache = ByteLevelBPETokenizer(smol.vocab, smol.merges, pattern="smollm", added_tokens=smol.added_token_objects())
    no_cache.cache_size = 0  # every pre-token merged from scratch, every time
    return cached, no_cache


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_ASCII, _ASCII_PIECES, _LATIN1))
def test_latin1_text_same_as_reference_cold_and_cached(smol_cached_and_not, ref_smol, text):
    """ASCII and latin-1 text (the twin regex, the translate fast path) against tokenizers: ids,
    offsets and word ids, on a cold cache, again from the cache, and with no cache at all."""
    cached, no_cache = smol_cached_and_not
    cached._cache.clear()
    ref = ref_smol.encode(text, add_special_tokens=False)
    want = (ref.ids, [tuple(x) for x in ref.offsets], ref.word_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 0x04 is not in SmolLM2's vocabulary: dropped, with a warning
        for tok in (cached, cached, no_cache):
            enc = tok.encode(text, add_special_tokens=False)
            assert (enc.ids, enc.offsets, enc.word_ids) == want


def test_repeated_pairs_and_dropped_pieces_match_reference(smol, ref_smol, real_texts):
    texts = ["aaaa aaaaa aaaaaaa", "ababab abababab", "--------- ======= ......", "\x04", "a \x04 b\x04\x04c",
             "x𝔘𝔘 \x04é", "mississippi bookkeeper 1000000"]
    texts += real_texts[::97]  # and real text through a cold cache, twice
    tok = ByteLevelBPETokenizer(smol.vocab, smol.merges, pattern="smollm", added_tokens=smol.added_token_objects())
    refs = ref_smol.encode_batch(texts, add_special_tokens=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            for enc, ref in zip(tok.encode_batch(texts, add_special_tokens=False), refs):
                assert enc.ids == ref.ids and enc.word_ids == ref.word_ids
                assert enc.offsets == [tuple(x) for x in ref.offsets]
    with pytest.warns(UserWarning, match="no token for byte"):  # a piece of dropped bytes only: no token
        enc = tok.encode("a\x04\x04", add_special_tokens=False)
    assert enc.tokens == ["a"] and enc.word_ids == [0] and enc.offsets == [(0, 1)]


def test_custom_pattern_with_gaps_and_groups_matches_tokenizers(smol):
    """A custom pattern that leaves characters unmatched (kept as pieces of their own, as
    tokenizers' Split(behavior="isolated") keeps them) and one with a capturing group."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers

    texts = ["Hello, world!  It's 2024.", "naïve café -- 12 $3.50\n\nend", "  leading and trailing  ", "x"]
    for pattern in (r"\p{L}+", r"(\p{L})+|\d"):
        ours = ByteLevelBPETokenizer(smol.vocab, smol.merges, pattern=pattern, added_tokens=smol.added_token_objects())
        tk = Tokenizer.from_str(json.dumps(smol.to_hf_json()))
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tk.post_processor = None
        for text, ref in zip(texts, tk.encode_batch(texts, add_special_tokens=False)):
            enc = ours.encode(text, add_special_tokens=False)
            assert enc.ids == ref.ids and enc.word_ids == ref.word_ids
            assert enc.offsets == [tuple(x) for x in ref.offsets]
