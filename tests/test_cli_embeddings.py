"""`transferlm embeddings train|evaluate|neighbours` end to end on small real inputs."""

from __future__ import annotations

import json

import pytest
from gensim.models import KeyedVectors

from transferlm.cli import main
from transferlm.data import assets
from transferlm.embeddings import evaluate as ev
from transferlm.embeddings.static import load_glove_asset, save_vectors


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    f = tmp_path_factory.mktemp("c") / "ptb.txt"
    f.write_text("\n".join(assets.ptb_text("train").splitlines()[:1500]) + "\n")
    return f


@pytest.mark.parametrize("algo,arch", [("word2vec", "--sg"), ("word2vec", "--cbow"), ("glove", None)])
def test_train_writes_word2vec_text(corpus, tmp_path, capsys, algo, arch) -> None:
    out = tmp_path / "run"
    argv = ["embeddings", "train", "--algo", algo, "--dim", "20", "--epochs", "1", str(corpus), "--out", str(out)]
    if arch:
        argv.insert(4, arch)
    assert main(argv) == 0
    cap = capsys.readouterr()
    last = json.loads(cap.out.strip().splitlines()[-1])
    assert last["dim"] == 20 and last["vocab"] > 500
    assert "word/s" in cap.err or "entry/s" in cap.err  # the progress bar's rate
    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))  # gensim reads what we wrote
    assert kv.vector_size == 20 and len(kv.index_to_key) == last["vocab"] and "the" in kv.index_to_key[:3]
    info = json.loads((out / "config.json").read_text())
    assert info["algo"] == algo and info["corpus_words"] > 30_000
    if algo == "word2vec":
        assert info["config"]["sg"] is (arch == "--sg")


def test_evaluate_prints_gensim_numbers_last(tmp_path, capsys) -> None:
    v = load_glove_asset().head(30_000)
    f = tmp_path / "glove30k.bin"
    save_vectors(v, f, "word2vec-binary")
    assert main(["embeddings", "evaluate", "--vectors", str(f), "--no-analogies"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    kv = KeyedVectors.load_word2vec_format(str(f), binary=True)
    _, s, oov = kv.evaluate_word_pairs(str(ev.gensim_test_data("wordsim353.tsv")))
    assert res["wordsim353_spearman"] == pytest.approx(s.statistic, abs=1e-12)
    assert res["wordsim353_oov_pct"] == oov
    assert res["words"] == 30_000 and res["dim"] == 50 and "google_3cosadd" not in res


def test_neighbours_of_the_asset(capsys) -> None:
    assert main(["embeddings", "neighbours", "--vectors", "glove", "--topn", "3", "france"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["word"] == "france" and line["neighbours"][0][0] in {"french", "belgium", "paris"}


def test_user_errors(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert main(["embeddings", "train", str(empty), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "empty.txt: empty corpus" in capsys.readouterr().err
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes(b"the cat sat\nun caf\xe9 noir\n")
    for algo in ("word2vec", "glove"):
        assert main(["embeddings", "train", "--algo", algo, str(latin1), "--out", str(tmp_path / "o"),
                     "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"{latin1}:2: not valid UTF-8 (byte 0xe9 at column 7); expected UTF-8 text" in err
    assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\nx 1 2 3\ny 1 2\n")
    assert main(["embeddings", "evaluate", "--vectors", str(bad)]) == 2
    assert "bad.txt:3: expected a word and 3 numbers, got 2" in capsys.readouterr().err
    assert main(["embeddings", "evaluate", "--vectors", str(tmp_path / "none.txt")]) == 2
    assert "no such vectors file" in capsys.readouterr().err
