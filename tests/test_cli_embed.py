"""`transferlm embed`: stdin or a file -> .npy rows in input order; --per-token JSON lines."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

from transferlm.cli import main
from transferlm.embeddings import contextual as C

pytestmark = pytest.mark.usefixtures("one_thread")  # small batches: one thread is faster, steadier

LINES = [
    "The stock market fell sharply on Tuesday after the bank raised interest rates.",
    "ok",
    "",  # an empty line still gets its row
    "We walked along the river bank until sunset, talking about nothing in particular.",
    "Tokenization splits rare words.",
]


@pytest.fixture(scope="module")
def minilm():
    return C.load("minilm")


def _stdin(monkeypatch, text: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text), encoding="utf-8"))


def test_stdin_to_npy_one_row_per_line_in_order(tmp_path, monkeypatch, minilm):
    _stdin(monkeypatch, ("\n".join(LINES) + "\n").encode())
    out = tmp_path / "vecs.npy"
    assert main(["embed", "--model", "minilm", "--pooling", "mean", "--out", str(out), "--batch-size", "2"]) == 0
    got = np.load(out, allow_pickle=False)
    assert got.shape == (len(LINES), 384) and got.dtype == np.float32
    model, tok = minilm
    for i, line in enumerate(LINES):  # each line alone: no batching, no bucketing
        np.testing.assert_allclose(got[i], C.embed([line], model, tok)[0], atol=1e-5, rtol=0)
    assert not list(tmp_path.glob(".vecs.npy.*"))  # the temp file was renamed away


def test_input_file_cls_normalize_and_layers(tmp_path, minilm):
    src = tmp_path / "in.txt"
    src.write_text("\r\n".join(LINES), encoding="utf-8")  # CRLF, no final newline
    out = tmp_path / "cls.npy"
    model, tok = minilm
    want = C.embed(LINES, model, tok, pooling="cls", layers=(-4, -3, -2, -1), normalize=True)
    for spec in ("last4", "-4,-3,-2,-1"):  # the second as typed, without "=" (argparse's negative numbers)
        rc = main(["embed", "--input", str(src), "--pooling", "cls", "--layers", spec, "--normalize",
                   "--out", str(out)])
        assert rc == 0
        got = np.load(out)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
        out.unlink()


def test_per_token_json_lines(tmp_path, monkeypatch, minilm):
    texts = LINES[:2] + LINES[3:]
    _stdin(monkeypatch, "\n".join(texts).encode())
    out = tmp_path / "tokens.jsonl"
    assert main(["embed", "--per-token", "--layers", "-1", "--out", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    model, tok = minilm
    want = C.embed_tokens(texts, model, tok)
    assert len(recs) == sum(len(w.tokens) for w in want)
    for lineno, (text, w) in enumerate(zip(texts, want), 1):
        mine = [r for r in recs if r["line"] == lineno]
        assert [r["index"] for r in mine] == list(range(len(w.tokens)))
        assert [r["token"] for r in mine] == w.tokens
        assert mine[0]["token"] == "[CLS]" and mine[0]["special"] and mine[-1]["token"] == "[SEP]"
        for r in mine:
            s, e = r["offsets"]
            if not r["special"]:  # the offsets point at the token's characters in the input line
                assert text[s:e].lower() == r["token"].removeprefix("##")
            assert len(r["vector"]) == 384
        np.testing.assert_allclose(np.array([r["vector"] for r in mine], dtype=np.float32), w.vectors,
                                   atol=1e-5, rtol=0)
    bank = [r for r in recs if r["token"] == "bank"]
    assert [r["line"] for r in bank] == [1, 3]


def test_per_token_to_stdout(monkeypatch, capsys):
    _stdin(monkeypatch, b"river bank\n")
    assert main(["embed", "--per-token", "--out", "-"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["token"] for r in recs] == ["[CLS]", "river", "bank", "[SEP]"]
    assert [r["offsets"] for r in recs] == [[0, 0], [0, 5], [6, 10], [0, 0]]


def test_errors_are_one_clear_line(tmp_path, monkeypatch, capsys):
    _stdin(monkeypatch, b"")
    assert main(["embed", "--out", str(tmp_path / "x.npy")]) == 2
    assert "<stdin>: no lines to embed" in capsys.readouterr().err

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\nbroken \xff here\n")
    assert main(["embed", "--input", str(bad), "--out", str(tmp_path / "x.npy")]) == 2
    assert f"{bad}:3: expected UTF-8 text" in capsys.readouterr().err

    assert main(["embed", "--input", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "missing.txt: no such input file" in capsys.readouterr().err

    _stdin(monkeypatch, b"hello\n")
    assert main(["embed", "--layers", "top", "--out", str(tmp_path / "x.npy")]) == 2
    assert "comma-separated integers" in capsys.readouterr().err

    _stdin(monkeypatch, b"hello\n")
    assert main(["embed", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "not an asset name" in capsys.readouterr().err
    _stdin(monkeypatch, b"hello\n")
    assert main(["embed", "--out", str(tmp_path / "x.txt")]) == 2
    assert "name the file *.npy" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "x.txt").exists()
