"""`transferlm finetune / evaluate / predict` end to end on each reader's real format (fixtures).

Plumbing only (2 updates per run): learning is tested in tests/test_pipelines_*.py.
"""

from __future__ import annotations

import io
import json
import sys

import pytest

from transferlm.cli import main

FIXTURES = "tests/fixtures"


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(capsys, argv, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


CASES = [  # task, train file, predict input, what each output line must hold
    ("classify", "classify.csv", {"text": "Stocks rose.", "id": "a"}, ("label", "score")),
    ("classify", "classify.jsonl", {"text": "The match ended."}, ("label", "score")),
    ("pair", "pairs.tsv", {"text": "A cat sat.", "text_b": "A cat was sitting."}, ("label", "score")),
    ("tag", "tagging_bioes.conll", {"text": "EU rejects German call"}, ("entities",)),
    ("spans", "nested_spans.jsonl", {"tokens": ["The", "University", "of", "New", "York"]}, ("entities",)),
    ("qa", "squad_v2.json", {"question": "Who won?", "context": "The Denver Broncos won the game."},
     ("answer", "start", "end", "score")),
]


@pytest.mark.parametrize("task,train,request_,keys", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_finetune_evaluate_predict(task, train, request_, keys, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    data = f"{FIXTURES}/{train}"
    code, stdout, err = _run(capsys, ["finetune", "--task", task, "--model", "minilm", "--train", data,
                                      "--dev", data, "--out", str(out), "--epochs", "1", "--min-steps", "2",
                                      "--batch-size", "2", "--max-length", "48", "--no-progress"])
    assert code == 0, err
    final = json.loads(stdout.strip().splitlines()[-1])
    assert final["model"] == str(out / "model") and any(k.startswith("dev_") for k in final)
    assert (out / "model" / "config.json").is_file() and (out / "metrics.jsonl").is_file()
    cfg = json.loads((out / "model" / "config.json").read_text())
    if task != "qa":
        assert set(cfg["label2id"]) == set(cfg["id2label"].values())
    else:
        assert "id2label" not in cfg and "label2id" not in cfg  # QA has no label set
    assert cfg.get("problem_type") == ("single_label_classification" if task in ("classify", "pair") else None)
    # --dev drives early stopping on the task's own dev metric, logged at every evaluation
    metric = "eval_accuracy" if task in ("classify", "pair") else "eval_f1"
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(metric in r for r in log), log

    code, stdout, err = _run(capsys, ["evaluate", "--model", str(out), "--data", data])
    assert code == 0, err
    metrics = json.loads(stdout.strip().splitlines()[-1])
    assert metrics["task"] == task
    assert {k[4:]: v for k, v in final.items() if k.startswith("dev_")} == \
        {k: v for k, v in metrics.items() if k != "task"}

    lines = json.dumps(request_) + "\n\n" + json.dumps(request_) + "\n"
    code, stdout, err = _run(capsys, ["predict", "--model", str(out / "model")], lines, monkeypatch)
    assert code == 0, err
    rows = [json.loads(x) for x in stdout.strip().splitlines()]
    assert len(rows) == 2 and rows[0] == rows[1]
    assert all(k in rows[0] for k in keys)
    if "id" in request_:
        assert rows[0]["id"] == request_["id"]
    if task == "qa" and rows[0]["answer"]:
        assert request_["context"][rows[0]["start"]:rows[0]["end"]] == rows[0]["answer"]
    for e in rows[0].get("entities", []):
        if "text" in request_:
            assert request_["text"][e["start"]:e["end"]] == e["text"]


@pytest.fixture(scope="module")
def pair_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("pair")
    assert main(["finetune", "--task", "pair", "--train", f"{FIXTURES}/pairs.tsv", "--out", str(out),
                 "--epochs", "1", "--min-steps", "1", "--max-length", "32", "--no-progress"]) == 0
    return out


def test_errors_name_file_and_line(tmp_path, capsys, monkeypatch, pair_model):
    bad_dev = tmp_path / "dev.tsv"
    bad_dev.write_text("sentence1\tsentence2\tlabel\na\tb\tentailment\nc\td\tcontradiction\n")
    code, _, err = _run(capsys, ["finetune", "--task", "pair", "--train", f"{FIXTURES}/pairs.tsv",
                                 "--dev", str(bad_dev), "--out", str(tmp_path / "o")])
    assert code == 2 and f"{bad_dev}:3" in err and "contradiction" in err

    code, _, err = _run(capsys, ["evaluate", "--model", str(pair_model), "--data", str(bad_dev)])
    assert code == 2 and f"{bad_dev}:3" in err

    cfg = tmp_path / "ft.yaml"
    cfg.write_text("task: pair\nepochs: 1\nlearning_rate: 0.1\n")
    code, _, err = _run(capsys, ["finetune", "--config", str(cfg), "--train", "x", "--out", "y"])
    assert code == 2 and f"{cfg}:3" in err and "learning_rate" in err

    code, _, err = _run(capsys, ["finetune", "--task", "tag", "--train", f"{FIXTURES}/pairs.tsv",
                                 "--out", str(tmp_path / "o")])
    assert code == 2 and "conll" in err

    lines = '{"text": "a", "text_b": "b"}\n{"text": "only one"}\n'
    code, _, err = _run(capsys, ["predict", "--model", str(pair_model)], lines, monkeypatch)
    assert code == 2 and "<stdin>:2" in err and "text_b" in err


def test_yaml_config_mirrors_flags(tmp_path, capsys):
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(f"task: classify\ntrain: {FIXTURES}/classify.csv\nout: {tmp_path / 'o'}\n"
                   "epochs: 1\nmin-steps: 1\nmax_length: 24\npooling: mean\nprogress: false\n")
    code, stdout, err = _run(capsys, ["finetune", "--config", str(cfg), "--pooling", "concat"])
    assert code == 0, err
    saved = json.loads((tmp_path / "o" / "model" / "transferlm_pipeline.json").read_text())
    assert saved["options"]["pooling"] == "concat" and saved["options"]["max_length"] == 24
