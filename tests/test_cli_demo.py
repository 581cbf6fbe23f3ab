"""`transferlm demo --quick`, the README's first command in its CI-sized form, end to end.

One module-scoped run: a child process runs the demo and gets SIGINT (Ctrl-C) as soon as the
pretraining has written its first checkpoint; the same command, run again here, must resume (not
start over) and finish. The tests then read the report folder: the table's numbers, the PNGs, the
Hugging Face folders, and a third run that only finds every stage done.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from transferlm.cli import main
from transferlm.demo.data import bbc_split, few_labels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METHODS = ("tfidf", "random", "pretrained", "minilm", "lstm_random", "ulmfit", "bag_random", "word2vec", "glove",
           "glove_finetune", "prompting")


@pytest.fixture(scope="module")
def threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # much faster than 2 on this shared machine
    yield
    torch.set_num_threads(old)


def _run(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, threads):
    out = tmp_path_factory.mktemp("demo") / "run"
    argv = ["demo", "--quick", "--out", str(out)]
    # 1. Ctrl-C in the middle of pretraining (a real SIGINT to a real process).
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A shell's background job inherits SIGINT as *ignored*, and Python then keeps ignoring it:
    # give the child the default disposition so that it raises KeyboardInterrupt like a terminal's Ctrl-C.
    child = subprocess.Popen([sys.executable, "-m", "transferlm", *argv, "--threads", "1", "--no-progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    latest = out / "pretrain" / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not latest.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert latest.exists(), "the pretraining never wrote a checkpoint"
    child.send_signal(signal.SIGINT)
    first_out, _ = child.communicate(timeout=60)
    assert child.returncode == 130, first_out
    assert "run the same command again to resume" in first_out
    assert not (out / "stages" / "2_pretrain.json").exists()  # it really was interrupted mid-stage
    # 2. The same command again: stage 1 is skipped, pretraining resumes from its checkpoint.
    code, second_out = _run(argv + ["--no-progress"])
    assert code == 0, second_out
    return out, first_out, second_out


@pytest.fixture(scope="module")
def results(demo):
    return json.loads((demo[0] / "report" / "results.json").read_text())


def test_interrupted_run_resumes_rather_than_starting_over(demo, results):
    out, first, second = demo
    assert "[1/4] vocabulary: done" in second  # the vocabulary is not learned again
    assert "(resuming)" in second and "resumed from step" in second
    assert results["pretraining"]["resumed"] is True
    plan = json.loads((out / "pretrain" / "plan.json").read_text())
    assert results["pretraining"]["steps"] == plan["steps"] >= 10  # the budget was turned into steps once


def test_the_table_has_every_method_with_numbers_in_range(demo, results):
    _, _, printed = demo
    fine = results["finetuning"]
    assert list(fine) == list(METHODS)
    for method, r in fine.items():
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["macro_f1"] <= 1.0, r
        # prompting puts one demonstration per topic of the 25 labelled articles into its prompt
        assert r["train_seconds"] > 0 and r["train_examples"] == (5 if method == "prompting" else 25)
        assert r["test_examples"] == 60
        # the printed table shows the measured number, as measured
        assert f"{r['accuracy']:.1%} +- {r['accuracy_sd']:.1%}" in printed and r["title"] in printed
        # --quick fine-tunes each method on two label samples; the row is their mean
        assert r["samples"] == 2 and len(r["sample_accuracies"]) == 2
        assert abs(r["accuracy"] - sum(r["sample_accuracies"]) / 2) < 1e-4
        assert r["first_sample_accuracy"] == r["sample_accuracies"][0]
    # Far above chance (20%) even at this size: the classical baseline and the real pretrained model.
    assert fine["tfidf"]["accuracy"] > 0.6
    assert fine["minilm"]["accuracy"] > 0.4
    pre = results["pretraining"]
    assert 0.0 < pre["unigram_accuracy"] < 0.5 and 0.0 < pre["heldout_mlm_accuracy"] < 1.0
    assert pre["seconds"] > 0 and pre["parameters"] > 0
    assert -1.0 <= results["bank_cosine"]["other_sense"] < results["bank_cosine"]["same_sense"] <= 1.0
    md = (demo[0] / "report" / "report.md").read_text()
    assert md.count("\n| ") == 1 + len(METHODS)  # header + one row per method


def test_the_new_rows_ulmfit_glove_prompting_are_measured_on_the_same_samples(demo, results):
    """The LSTM LM, ULMFiT and its twin, GloVe and prompting: real runs, sane values (not fixed numbers)."""
    out, _, printed = demo
    lm = results["lstm_lm"]
    g, t = lm["general"], lm["target"]
    plan = json.loads((out / "lstm" / "general" / "plan.json").read_text())
    assert g["steps"] == plan["steps"] >= 10 and t["steps"] >= 10  # budgets turned into steps once
    assert plan["precision"] in ("bf16", "fp32")  # the precision the step time was measured in
    assert 1.0 < g["heldout_ppl"] < g["vocab_size"] and 1.0 < g["unigram_ppl"] < g["vocab_size"]
    assert 0.0 < t["train_loss"] < 10.0
    for name in ("general", "target"):
        assert (out / "lstm" / name / "model" / "model.safetensors").exists()
    fine = results["finetuning"]
    # the twins: same architecture and parameter count, different starts, both fitted
    assert fine["ulmfit"]["parameters"] == fine["lstm_random"]["parameters"] > 0
    markers = {m: [json.loads((out / "stages" / (f"3_{m}.json" if s == 0 else f"3_{m}_{s}.json")).read_text())
                   for s in range(2)] for m in METHODS}
    gold_n = fine["tfidf"]["test_examples"]
    for m in METHODS:  # every row predicts every test article, with the topics
        for r in markers[m]:
            assert len(r["pred"]) == gold_n and set(r["pred"]) <= set(results["split"]["labels"])
    # GloVe features are strong even at 5 labels per topic (far above the 20% chance of 5 topics)
    assert fine["glove"]["accuracy"] > 0.4 and fine["glove_finetune"]["accuracy"] > 0.4
    assert fine["glove"]["parameters"] < fine["glove_finetune"]["parameters"]  # frozen rows do not train
    # word2vec trained here on the unlabeled text, and the same bag classifier over random vectors
    w = lm["word2vec"]
    assert w["vocab_size"] > 1000 and w["words"] > 100_000 and (out / "word2vec" / "vectors.txt").exists()
    # the same table (words and size), every row trained: only the start differs
    assert fine["word2vec"]["parameters"] == fine["bag_random"]["parameters"] > 0
    assert fine["bag_random"]["accuracy"] > 0.2 and fine["word2vec"]["accuracy"] > 0.2
    # prompting: 5 demonstrations cached once, calibrated scores above chance, the raw reading recorded
    p = fine["prompting"]
    assert p["shared_prompt_tokens"] > 5 * 10 and 0.0 < p["score_seconds_per_article"] < 30
    assert 0.0 <= p["raw_accuracy"] <= 1.0 and abs(sum(p["p_cf"]) - 1.0) < 1e-2
    assert p["accuracy"] > 0.25
    assert "uncalibrated" in printed and "LSTM LM: held-out PTB valid perplexity" in printed
    assert (out / "models" / "bbc-ulmfit" / "config.json").exists()
    assert (out / "finetune" / "prompting" / "scores.json").exists()


def test_report_pngs_are_valid_images(demo):
    import matplotlib.image as mpimg

    for name in ("pretraining.png", "finetuning.png", "confusion.png", "bank.png"):
        path = demo[0] / "report" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 600, (name, img.shape)
        assert float(img[..., :3].std()) > 0.05, f"{name} is blank"


def test_models_are_hugging_face_folders_that_reload_to_the_same_predictions(demo):
    from transformers import BertForPreTraining

    from transferlm.demo.data import DemoData
    from transferlm.pipelines import TextClassifier

    out = demo[0]
    hf, info = BertForPreTraining.from_pretrained(str(out / "models" / "pretrained"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    marker = json.loads((out / "stages" / "3_pretrained.json").read_text())
    data = DemoData.load(5, 0, test_per_class=12)
    texts = [t for t, _ in data.test[:6]]
    clf = TextClassifier.from_pretrained(out / "models" / "bbc-pretrained")
    assert [p["label"] for p in clf.predict(texts)] == marker["pred"][:6]
    assert (out / "models" / "bbc-minilm" / "config.json").exists()


def test_a_finished_run_is_not_redone_and_other_options_are_refused(demo, results):
    out = demo[0]
    t0 = time.perf_counter()
    code, printed = _run(["demo", "--quick", "--out", str(out), "--no-progress"])
    assert code == 0
    # stages 1, 2, the LSTM LM, word2vec and each fine-tuning run (2 samples)
    assert printed.count(": done") == 4 + 2 * len(METHODS)
    assert json.loads((out / "report" / "results.json").read_text())["finetuning"] == results["finetuning"]
    assert time.perf_counter() - t0 < 60
    code = main(["demo", "--quick", "--out", str(out), "--labels-per-class", "3"])
    assert code == 2  # made with other options: a clear error, nothing overwritten


def test_bbc_split_is_stratified_seeded_and_disjoint():
    data = [(f"text {lab} {i}", lab) for lab in "abc" for i in range(50)]
    train, test = bbc_split(data, 0.2, seed=0)
    assert len(test) == 30 and {lab for _, lab in test} == set("abc")
    assert sum(lab == "a" for _, lab in test) == 10
    assert not {t for t, _ in train} & {t for t, _ in test}
    assert bbc_split(data, 0.2, seed=0) == (train, test) != bbc_split(data, 0.2, seed=1)
    few, dev = few_labels(train, 4, seed=0)
    assert len(few) == len(dev) == 12 and not {t for t, _ in few} & {t for t, _ in dev}
    with pytest.raises(ValueError, match="fewer than"):
        few_labels(train, 30)


def test_pretrain_precision_auto_follows_native_bf16_and_flag_overrides():
    import torch

    from transferlm.cli import build_parser
    from transferlm.cli.demo import config_from_args
    from transferlm.demo.stages import pretrain_precision

    native = torch.ops.mkldnn._is_mkldnn_bf16_supported() and not torch.cuda.is_available()
    auto = config_from_args(build_parser().parse_args(["demo", "--quick"]))
    assert pretrain_precision(auto) == ("bf16" if native else pretrain_precision(auto))
    assert pretrain_precision(auto) in ("bf16", "fp32")
    forced = config_from_args(build_parser().parse_args(["demo", "--quick", "--precision", "fp32"]))
    assert forced.pretrain_precision == "fp32" and pretrain_precision(forced) == "fp32"
