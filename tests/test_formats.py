"""Readers on real WNUT-16 and on hand-made fixtures; errors name file and line; label sets."""

import json
from pathlib import Path

import pytest

from transferlm.data import assets
from transferlm.data.formats import (FormatError, LabelSet, Span, bio_to_bioes, bioes_to_bio,
                                     check_tag, detect_scheme, read_classification, read_conll,
                                     read_conllu, read_examples, read_spans, read_squad,
                                     sniff_format, write_conll)
from transferlm.training.metrics import entity_prf

FIX = Path(__file__).parent / "fixtures"


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------------------------------- CoNLL

def test_read_conll_on_real_wnut():
    path = assets.path("wnut16")
    ours = read_conll(path)
    ref = assets.wnut16()
    assert len(ours) == len(ref) == 2394
    assert [(s.tokens, s.tags) for s in ours] == ref
    assert ours.skipped == []
    assert ours[0].line == 1 and ours[1].line == len(ref[0][0]) + 2
    assert sniff_format(path) == "conll"
    labels = LabelSet.from_data(t for s in ours for t in s.tags)
    assert labels.labels[0] == "O" and len(labels) == 21


def test_read_conll_bioes_multicolumn_docstart(tmp_path):
    sents = read_conll(FIX / "tagging_bioes.conll", scheme="BIOES")
    assert [s.tokens[:2] for s in sents] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert sents[0].tags[:3] == ["S-ORG", "O", "S-MISC"] and sents[1].tags == ["B-PER", "E-PER"]
    assert sents[1].line == 13
    with pytest.raises(FormatError, match=r"tagging_bioes\.conll:3: .*S-ORG"):
        read_conll(FIX / "tagging_bioes.conll", scheme="BIO")
    # write and read back
    out = tmp_path / "x.conll"
    write_conll(out, sents)
    assert [(s.tokens, s.tags) for s in read_conll(out, scheme="BIOES")] == \
        [(s.tokens, s.tags) for s in sents]


def test_bio_bioes_conversion_on_wnut():
    bio = [tags for _, tags in assets.wnut16()]
    bioes = [bio_to_bioes(t) for t in bio]
    assert [bioes_to_bio(t) for t in bioes] == bio
    assert bio_to_bioes(["B-X", "I-X", "I-X", "O", "B-Y", "I-Z"]) == ["B-X", "I-X", "E-X", "O", "S-Y", "S-Z"]
    # the same entities under both schemes, strictly parsed
    same = entity_prf(bio, bioes, mode="default")
    assert same.micro.f1 == 1.0 and same.micro.support == sum(t.startswith("B-") for s in bio for t in s)
    strict = entity_prf([bioes_to_bio(t) for t in bioes], bio, mode="strict", scheme="IOB2")
    assert strict.micro.f1 == 1.0
    assert entity_prf(bioes, bioes, mode="strict", scheme="IOBES").micro.support == same.micro.support


def test_conll_errors_name_file_and_line(tmp_path):
    p = _write(tmp_path, "bad.conll", "a\tO\nb\tB-X\n\nc\n\nd\tI-X\n")
    with pytest.raises(FormatError) as e:
        read_conll(p)
    assert e.value.line == 4 and str(p) in str(e.value) and "token<TAB>tag" in str(e.value)
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        got = read_conll(p, skip_bad=True)
    assert [s.tokens for s in got] == [["a", "b"], ["d"]]
    assert len(got.skipped) == 1 and got.skipped[0].line == 4
    labels = LabelSet(["O", "B-X"])
    p = _write(tmp_path, "dev.conll", "a\tO\nb\tB-X\n\nc\tO\n\n\nd\tI-X\n")
    with pytest.raises(FormatError, match=r"dev\.conll:7: unknown tag 'I-X'"):
        read_conll(p, label_set=labels)


# ------------------------------------------------------------------- any tag set (part of speech)

BROWN = ["at", "np-tl", "nn-tl", "ppss", "ber*", ".", "``", "''", "np$", "nns", "do*", "--", "(", ")"]
UD = ["NOUN", "VERB", "PROPN", "PUNCT", "X", "SYM"]
PTB = ["NN", "NNP", "-LRB-", "-RRB-", "$", "#", ",", ":", "PRP$", "WP$"]


def test_detect_scheme():
    assert detect_scheme(["O", "B-PER", "I-PER", "B-LOC"]) == "bio"
    assert detect_scheme(["B-X", "I-X"]) == "bio"  # no O still entity-shaped
    assert detect_scheme(["O"]) == "bio"
    assert detect_scheme(["O", "B-X", "I-X", "E-X", "S-X"]) == "bioes"
    assert detect_scheme(["O", "S-X"]) == "bioes"
    for tags in (BROWN, UD, PTB):
        assert detect_scheme(tags) == "plain", tags
        for t in tags:  # one such tag among entity tags makes the whole set plain
            assert detect_scheme(["O", "B-X", "I-X", t]) == "plain", t
    for odd in ("B-", "I", "b-x", "B_X", "BX", "E", "O-X", "U-X", "-"):
        assert detect_scheme(["O", "B-X", odd]) == "plain", odd
    assert check_tag("ber*", "plain") is None and check_tag("ber*", "BIO") is not None
    assert "'ber*'" in check_tag("ber*", "bio") and "plain" in check_tag("ber*", "bio")


def test_read_conll_pos_fixture_and_scheme_errors(tmp_path):
    sents = read_conll(FIX / "pos_brown.conll")  # scheme detected: any tag string is read
    assert sents.scheme == "plain" and len(sents) == 8
    assert sents[1].tokens == ["They", "aren't", "here", "yet", "."]
    assert sents[1].tags == ["ppss", "ber*", "rb", "rb", "."]
    tags = {t for s in sents for t in s.tags}
    assert {"np-tl", "``", "''", "np$", "(", ")", "--", "do*", "bedz*"} <= tags
    assert read_conll(FIX / "tagging_bioes.conll").scheme == "bioes"
    assert read_conll(assets.path("wnut16")).scheme == "bio"
    # a scheme given by the caller is checked on every tag: the bad one is named with file:line
    p = _write(tmp_path, "mixed.conll", "Paris\tB-LOC\nis\tO\n\nHe\tO\nran\tvbd\n")
    assert read_conll(p).scheme == "plain"
    with pytest.raises(FormatError, match=r"mixed\.conll:5: expected 'O' or B/I-<type> \(BIO\), got 'vbd'"):
        read_conll(p, scheme="bio")
    with pytest.raises(FormatError, match=r"pos_brown\.conll:1: .*'at'"):
        read_conll(FIX / "pos_brown.conll", scheme="bio")
    assert read_conll(p, scheme="plain").scheme == "plain"
    with pytest.raises(ValueError, match="scheme"):
        read_conll(p, scheme="iob1")
    # PTB-style tags that look like punctuation or comments are tags, not markup
    p = _write(tmp_path, "ptb.conll", "(\t-LRB-\n#\t#\n$\t$\n)\t-RRB-\n")
    assert [(s.tokens, s.tags) for s in read_conll(p)] == [(["(", "#", "$", ")"], ["-LRB-", "#", "$", "-RRB-"])]


def test_read_conllu_fixture(tmp_path):
    sents = read_conllu(FIX / "pos_ud.conllu")
    assert sents.scheme == "plain" and len(sents) == 3
    # comments skipped; the multiword token "don't" (2-3) gives way to its words; empty node 6.1 skipped
    assert sents[0].tokens == ["I", "do", "n't", "like", "cold", "weather", "."]
    assert sents[0].tags == ["PRON", "AUX", "PART", "VERB", "ADJ", "NOUN", "PUNCT"]
    assert sents[1].tokens == ["Mary", "went", "to", "Paris", "and", "John", "to", "London", "."]
    assert sents[0].line == 4
    xpos = read_conllu(FIX / "pos_ud.conllu", tag_column="xpos")
    assert xpos[2].tags[8:11] == ["-LRB-", "$", "CD"]
    assert read_examples(FIX / "pos_ud.conllu")[2].tokens == sents[2].tokens
    bad = _write(tmp_path, "bad.conllu", "# c\n1\ta\ta\tDET\tDT\t_\t0\troot\t_\t_\n2\tb\tb\t_\t_\t_\t1\tdep\t_\t_\n")
    with pytest.raises(FormatError, match=r"bad\.conllu:3: no UPOS tag"):
        read_conllu(bad)
    bad = _write(tmp_path, "short.conllu", "1\ta\tDET\n")
    with pytest.raises(FormatError, match=r"short\.conllu:1: expected 10 tab-separated CoNLL-U columns, got 3"):
        read_conllu(bad)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(read_conllu(bad, skip_bad=True)) == 0


def test_conll_extension_is_trusted_and_sniffing_any_tags(tmp_path):
    # regression: a .conll of real POS tags was refused ("looks like tsv") because sniffing
    # guessed from the tag's shape
    text = (FIX / "pos_brown.conll").read_text(encoding="utf-8")
    for ext in (".conll", ".bio", ".iob"):
        assert sniff_format(_write(tmp_path, "brown" + ext, text)) == "conll"
    assert sniff_format(_write(tmp_path, "weird.conll", "a,b\tc\n")) == "conll"  # trusted, not sniffed
    # unknown extensions: tab-separated lines in blank-line separated groups are CoNLL
    assert sniff_format(_write(tmp_path, "brown.txt", text)) == "conll"
    assert sniff_format(_write(tmp_path, "brown", text)) == "conll"
    assert sniff_format(_write(tmp_path, "ud.conllu", "1\ta\n")) == "conllu"
    ud = (FIX / "pos_ud.conllu").read_text(encoding="utf-8")
    assert sniff_format(_write(tmp_path, "ud.txt", ud)) == "conllu"
    assert read_examples(_write(tmp_path, "b.txt", text))[1].tags[1] == "ber*"
    # without blank-line groups a tab-separated file is still a TSV with a header
    assert sniff_format(_write(tmp_path, "table", "a\tb\tlabel\nx\ty\t1\nz\tw\t0\n")) == "tsv"


def test_jsonl_record_with_header_key_is_data(tmp_path):
    # regression: the CSV header was marked in-band with a {"__header__": ...} record, so a JSON
    # lines record with that key vanished, uncounted
    p = _write(tmp_path, "h.jsonl", '{"text": "a", "label": "x"}\n{"__header__": ["q"], "text": "b", "label": "y"}\n'
                                   '{"__header__": 1}\n')
    with pytest.warns(UserWarning, match="skipped 1"):
        ex = read_classification(p, skip_bad=True)
    assert [(e.text, e.label) for e in ex] == [("a", "x"), ("b", "y")]
    assert len(ex.skipped) == 1 and ex.skipped[0].line == 3
    with pytest.raises(FormatError, match=r"h\.jsonl:3"):
        read_classification(p)
    # and a CSV column named __header__ is an ordinary column
    p = _write(tmp_path, "h.csv", "__header__,text,label\n1,a,x\n2,b,y\n")
    assert [(e.text, e.label) for e in read_classification(p)] == [("a", "x"), ("b", "y")]


# --------------------------------------------------------------------------- classification / pairs

def test_glue_tsv_pairs():
    ex = read_classification(FIX / "pairs.tsv")
    assert len(ex) == 3
    assert ex[1].text == 'He said "no" twice.' and ex[1].text_b == "He agreed at once."
    assert ex[2].text_b == "France's capital is Paris."
    assert [e.label for e in ex] == ["entailment", "not_entailment", "entailment"]
    assert [e.line for e in ex] == [2, 3, 4]
    assert sniff_format(FIX / "pairs.tsv") == "tsv"
    single = read_classification(FIX / "pairs.tsv", pairs=False)
    assert single[0].text_b is None and single[0].text == "The cat sat on the mat."


def test_glue_column_layouts(tmp_path):
    qnli = _write(tmp_path, "qnli.tsv", "index\tquestion\tsentence\tlabel\n0\tWho?\tHe did.\tentailment\n")
    ex = read_classification(qnli)[0]
    assert (ex.text, ex.text_b) == ("Who?", "He did.")
    mrpc = _write(tmp_path, "mrpc.tsv", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                  "1\t7\t8\tA \"quoted\" one.\tAnother.\n")
    ex = read_classification(mrpc)[0]
    assert (ex.text, ex.text_b, ex.label) == ('A "quoted" one.', "Another.", "1")
    sst = _write(tmp_path, "sst.tsv", "sentence\tlabel\nit 's a charming journey .\t1\n")
    assert read_classification(sst)[0].text_b is None
    with pytest.raises(FormatError, match=r"sst\.tsv:1: .*pairs=True"):
        read_classification(sst, pairs=True)
    stsb = _write(tmp_path, "stsb.tsv", "index\tsentence1\tsentence2\tscore\n0\ta\tb\t3.8\n")
    assert read_classification(stsb, regression=True)[0].label == 3.8


def test_csv_and_jsonl():
    csv_ex = read_classification(FIX / "classify.csv")
    assert [e.text for e in csv_ex] == ["Stocks fell, then rose again.", "The match ended in a draw.",
                                        'He said "hello" and left.']
    js = read_examples(FIX / "classify.jsonl")
    assert [e.label for e in js] == ["business", "sport", "politics"]
    assert [e.line for e in js] == [1, 2, 4]
    labels = LabelSet.from_data(e.label for e in csv_ex)
    with pytest.raises(FormatError, match=r"classify\.jsonl:4: unknown label 'politics'"):
        read_classification(FIX / "classify.jsonl", label_set=labels)


def test_csv_and_jsonl_roundtrip_real_bbc(tmp_path):
    """Real articles (newlines, quotes, commas) survive CSV and JSON lines."""
    import csv

    data = assets.bbc_news()[::10]
    p = tmp_path / "bbc.csv"
    with open(p, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(data)
    got = read_classification(p)
    assert [(e.text, e.label) for e in got] == data
    assert any("\n" in e.text and '"' in e.text and "," in e.text for e in got)
    q = tmp_path / "bbc.jsonl"
    q.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in data))
    assert [(e.text, e.label) for e in read_examples(q)] == data
    labels = LabelSet.from_data(e.label for e in got)
    assert labels.labels == ["business", "entertainment", "politics", "sports", "tech"]


def test_classification_errors(tmp_path):
    p = _write(tmp_path, "t.csv", "text,label\nfine,a\n  ,b\nok,c\n")
    with pytest.raises(FormatError, match=r"t\.csv:3: empty or missing text"):
        read_classification(p)
    with pytest.warns(UserWarning):
        got = read_classification(p, skip_bad=True)
    assert [e.text for e in got] == ["fine", "ok"] and got.skipped[0].line == 3
    p = _write(tmp_path, "t.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    with pytest.raises(FormatError, match=r"t\.jsonl:2: not valid JSON"):
        read_classification(p)
    p = _write(tmp_path, "r.tsv", "sentence\tscore\nnice\t4.5\nbad\tfive\n")
    with pytest.raises(FormatError, match=r"r\.tsv:3: expected a number"):
        read_classification(p, regression=True)
    p = _write(tmp_path, "c.tsv", "sentence\tlabel\nnice\t1\textra\n")
    with pytest.raises(FormatError, match=r"c\.tsv:2: expected 2 fields"):
        read_classification(p)
    p = _write(tmp_path, "h.csv", "body,label\nx,1\n")
    with pytest.raises(FormatError, match=r"h\.csv:1: no text column"):
        read_classification(p)


# ------------------------------------------------------------------------------------------ spans

def test_nested_spans_fixture():
    ex = read_spans(FIX / "nested_spans.jsonl")
    assert len(ex) == 3
    assert ex[0].spans == [Span(1, 5, "ORG"), Span(3, 5, "LOC"), Span(1, 6, "FAC")]
    # end is exclusive: tokens[start:end]
    assert ex[0].tokens[1:5] == ["University", "of", "New", "York"]
    assert ex[2].spans == []
    assert sniff_format(FIX / "nested_spans.jsonl") == "spans"


def test_span_errors(tmp_path):
    p = _write(tmp_path, "s.jsonl", '{"tokens": ["a", "b"], "spans": []}\n'
               '{"tokens": ["a", "b"], "spans": [{"start": 1, "end": 3, "label": "X"}]}\n')
    with pytest.raises(FormatError, match=r"s\.jsonl:2: span 0 \[1, 3\) is outside the sentence"):
        read_spans(p)
    p = _write(tmp_path, "s.jsonl", '{"tokens": ["a"], "spans": [{"start": 0, "end": 0, "label": "X"}]}\n')
    with pytest.raises(FormatError, match=r"s\.jsonl:1: .*end is exclusive"):
        read_spans(p)
    p = _write(tmp_path, "s.jsonl", '{"tokens": [], "spans": []}\n')
    with pytest.raises(FormatError, match=r"s\.jsonl:1: expected \"tokens\""):
        read_spans(p)


# ------------------------------------------------------------------------------------------ SQuAD

def test_squad_v2_fixture():
    ex = read_squad(FIX / "squad_v2.json")
    assert [e.id for e in ex] == ["sb-1", "sb-2", "sb-3", "am-1", "am-2"]
    for e in ex:
        for a in e.answers + e.plausible_answers:
            assert e.context[a.start:a.start + len(a.text)] == a.text
    assert ex[2].is_impossible and ex[2].answers == [] and ex[2].plausible_answers
    assert ex[4].answers[0].start == ex[4].context.rindex("rainforest")
    assert ex[0].line == 11 and ex[0].title == "Super_Bowl_50"
    assert sniff_format(FIX / "squad_v2.json") == "squad"


def test_squad_errors_name_the_line(tmp_path):
    obj = json.loads((FIX / "squad_v2.json").read_text())
    obj["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    p = _write(tmp_path, "sq.json", json.dumps(obj, indent=1))
    with pytest.raises(FormatError, match=r"sq\.json:67: .*is not at character"):
        read_squad(p)
    with pytest.warns(UserWarning, match="skipped 1"):
        assert len(read_squad(p, skip_bad=True)) == 4
    obj = json.loads((FIX / "squad_v2.json").read_text())
    obj["data"][0]["paragraphs"][0]["qas"][2]["answers"] = [{"text": "Denver", "answer_start": 49}]
    p = _write(tmp_path, "sq.json", json.dumps(obj, indent=1))
    with pytest.raises(FormatError, match="is_impossible is true but it has answers"):
        read_squad(p)
    p = _write(tmp_path, "sq.json", '{"data": [\n{"paragraphs": }]}')
    with pytest.raises(FormatError, match=r"sq\.json:2: not valid JSON"):
        read_squad(p)


# ------------------------------------------------------------------------------------- label sets

def test_labelset_roundtrip_and_unknown(tmp_path):
    labels = LabelSet.from_data(["I-PER", "O", "B-PER", "O"])
    assert labels.labels == ["O", "B-PER", "I-PER"]
    assert labels.encode(["O", "I-PER"]) == [0, 2] and labels.decode([1]) == ["B-PER"]
    path = tmp_path / "sub" / "labels.json"
    labels.save(path)
    assert LabelSet.load(path) == labels
    assert [p.name for p in path.parent.iterdir()] == ["labels.json"]  # no temp file left
    with pytest.raises(KeyError, match="dev.conll:7: unknown label 'B-LOC'"):
        labels.id("B-LOC", where="dev.conll:7")
    _write(tmp_path, "l.json", '{"labels": [1, 2]}')
    with pytest.raises(FormatError, match=r"l\.json:1: expected"):
        LabelSet.load(tmp_path / "l.json")


def test_sniffer(tmp_path):
    assert sniff_format(FIX / "classify.csv") == "csv"
    assert sniff_format(FIX / "classify.jsonl") == "jsonl"
    assert sniff_format(FIX / "tagging_bioes.conll") == "conll"
    assert sniff_format(_write(tmp_path, "noext", "a\tb\tlabel\nx\ty\t1\n")) == "tsv"
    assert sniff_format(_write(tmp_path, "data.txt", "Paris B-LOC\nis O\n")) == "conll"
    with pytest.raises(FormatError, match="empty"):
        sniff_format(_write(tmp_path, "e.txt", "\n\n"))
    with pytest.raises(FormatError, match="cannot tell"):
        sniff_format(_write(tmp_path, "e.txt", "just words\n"))
