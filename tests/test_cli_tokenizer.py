"""`transferlm tokenizer train|encode`, in process (cli.main) and as a subprocess (stdin/stdout)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tokenizers import Tokenizer as HFTokenizer

from transferlm.cli import main
from transferlm.data import assets
from transferlm.tokenization.wordpiece import WordPieceTokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    lines = assets.ptb_text("valid").splitlines()
    a, b = d / "a.txt", d / "b.txt"
    a.write_text("\n".join(lines[:1500]) + "\n", encoding="utf-8")
    b.write_text("\n".join(lines[1500:]) + "\nNaïve Café [MASK]\n", encoding="utf-8")
    return [a, b]


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("wp")
    code = main(["tokenizer", "train", "--algo", "wordpiece", "--vocab-size", "800", *map(str, corpus),
                 "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_wordpiece_writes_a_folder_tokenizers_reads(trained):
    assert {"vocab.txt", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in trained.iterdir()}
    vocab = (trained / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 800 and vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert all(t == t.lower() for t in vocab[5:])  # lowercased by default
    ref = HFTokenizer.from_file(str(trained / "tokenizer.json"))
    assert ref.encode("the company said").tokens[0] == "[CLS]"


def test_train_no_lowercase_keeps_case(corpus, tmp_path):
    src = tmp_path / "cased.txt"
    src.write_text("Apple apple APPLE Banana\n" * 5, encoding="utf-8")
    assert main(["tokenizer", "train", "--algo", "wordpiece", "--vocab-size", "40", str(src), "--out",
                 str(tmp_path / "o"), "--no-lowercase", "--no-progress", "--min-frequency", "1"]) == 0
    vocab = (tmp_path / "o" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert "A" in vocab and "a" in vocab and "B" in vocab


def test_train_frequency_score_equals_the_api(corpus, tmp_path):
    assert main(["tokenizer", "train", "--algo", "wordpiece", "--vocab-size", "800", *map(str, corpus),
                 "--score", "frequency", "--out", str(tmp_path / "f"), "--no-progress"]) == 0
    vocab = (tmp_path / "f" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines = [x for f in corpus for x in f.read_text(encoding="utf-8").splitlines()]
    api = WordPieceTokenizer.train_from_iterator(lines, 800, score="frequency")
    assert vocab == sorted(api.get_vocab(), key=api.get_vocab().get)
    assert "the" in vocab
    assert main(["tokenizer", "train", "--algo", "bpe", "--vocab-size", "300", str(corpus[0]), "--score",
                 "frequency", "--out", str(tmp_path / "b"), "--no-progress"]) == 2  # WordPiece only


def test_encode_via_subprocess(trained):
    lines = ["The company said it expects", "naïve café", "", "a [SEP] b"]
    proc = subprocess.run([sys.executable, "-m", "transferlm", "tokenizer", "encode", "--tokenizer", str(trained)],
                          input="\n".join(lines).encode("utf-8") + b"\n", capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = [json.loads(x) for x in proc.stdout.decode("utf-8").splitlines()]
    assert len(rows) == len(lines)
    ref = HFTokenizer.from_file(str(trained / "tokenizer.json"))
    for text, row in zip(lines, rows):
        r = ref.encode(text)
        assert row["ids"] == r.ids and row["tokens"] == r.tokens
        assert [tuple(o) for o in row["offsets"]] == [tuple(o) for o in r.offsets]


def test_encode_options_and_bad_stdin(trained):
    cmd = [sys.executable, "-m", "transferlm", "tokenizer", "encode", "--tokenizer", str(trained)]
    proc = subprocess.run(cmd + ["--no-special-tokens", "--max-length", "3"], input=b"the company said it expects\n",
                          capture_output=True, timeout=120)
    row = json.loads(proc.stdout)
    assert proc.returncode == 0 and len(row["ids"]) == 3 and "[CLS]" not in row["tokens"]
    proc = subprocess.run(cmd, input=b"fine\nbad \xff byte\n", capture_output=True, timeout=120)
    assert proc.returncode == 2
    assert b"<stdin>:2: not valid UTF-8" in proc.stderr


def test_user_errors(corpus, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok line\nsecond \xc3\x28 line\n")
    assert main(["tokenizer", "train", "--algo", "wordpiece", "--vocab-size", "100", str(bad), "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: not valid UTF-8" in err
    assert main(["tokenizer", "train", "--algo", "wordpiece", "--vocab-size", "100", str(tmp_path / "missing.txt"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "missing.txt: no such file" in capsys.readouterr().err
    assert main(["tokenizer", "train", "--algo", "wordpiece", "--vocab-size", "0", str(corpus[0]), "--out",
                 str(tmp_path / "o")]) == 2
    assert main(["tokenizer", "train", "--algo", "wordpiece", "--vocab-size", "10", str(corpus[0]), "--out",
                 str(tmp_path / "o"), "--no-progress"]) == 2
    assert "too small" in capsys.readouterr().err
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_train_bpe(corpus, tmp_path):
    out = tmp_path / "bpe"
    assert main(["tokenizer", "train", "--algo", "bpe", "--vocab-size", "400", *map(str, corpus), "--out", str(out),
                 "--no-progress"]) == 0
    from transferlm.tokenization.io import load_tokenizer

    tok = load_tokenizer(out)
    assert tok.vocab_size == 400
    assert tok.decode(tok.encode("the company said").ids) == "the company said"
    assert main(["tokenizer", "train", "--algo", "bpe", "--vocab-size", "400", str(corpus[0]), "--out", str(out),
                 "--lowercase"]) == 2
