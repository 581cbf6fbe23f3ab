"""`transferlm serve` on every kind of saved classifier `transferlm finetune` writes: a ULMFiT LSTM
classifier (finetune --model LSTM_DIR) and a GPT-1 decoder classifier (finetune --model a GPT-2
folder), each fine-tuned for a few steps on real BBC sentences by the CLI itself; /classify over
HTTP equals the pipeline's own predict_proba, and inputs over the limit are refused or truncated."""

from __future__ import annotations

import json

import httpx
import pytest
import torch

from serve_util import Running, bbc_examples, make_gpt2
from transferlm.cli import main
from transferlm.data import assets
from transferlm.models.lstm import LSTMConfig, LSTMLanguageModel, WordVocab
from transferlm.pipelines import load as load_pipeline
from transferlm.serving import ModelLoadError, ServeOptions, create_app, load_model

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["Shares in the carmaker fell after profits slipped.", "The striker scored twice in the second half.",
         "Ministers will debate the bill next week."]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("saved")
    data = bbc_examples(4)
    (d / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in data))
    # an LSTM LM folder (as `transferlm lm train` writes), its vocabulary from BBC text
    text = [t for t, _ in assets.bbc_news()[::40]]
    vocab = WordVocab.build(text, "words", max_size=1500)
    torch.manual_seed(0)
    LSTMLanguageModel(LSTMConfig(vocab_size=len(vocab), emb_dim=16, hidden_size=16, tokenizer="words")
                      ).save_pretrained(d / "lm", vocab)
    assert main(["finetune", "--task", "classify", "--model", str(d / "lm"), "--train", str(d / "train.jsonl"),
                 "--out", str(d / "ulmfit"), "--epochs", "2", "--max-length", "40", "--no-progress"]) == 0
    gpt = make_gpt2(d / "gpt")
    assert main(["finetune", "--task", "classify", "--model", str(gpt), "--train", str(d / "train.jsonl"),
                 "--out", str(d / "gpt1"), "--max-steps", "4", "--batch-size", "5", "--max-length", "48",
                 "--no-progress"]) == 0
    return {"ulmfit": d / "ulmfit" / "model", "gpt1": d / "gpt1" / "model", "lm": d / "lm"}


def test_ulmfit_and_gpt1_classifiers_serve_classify(saved):
    models = [load_model("ulmfit", str(saved["ulmfit"])), load_model("gpt1", str(saved["gpt1"]))]
    with Running(create_app(models, ServeOptions())) as run, httpx.Client(base_url=run.url, timeout=60) as c:
        info = {m["name"]: m for m in c.get("/models").json()["models"]}
        assert info["ulmfit"]["kind"] == info["gpt1"]["kind"] == "classifier"
        assert info["ulmfit"]["pipeline"] == "UlmfitClassifier" and info["ulmfit"]["tasks"] == ["classify"]
        assert info["gpt1"]["pipeline"] == "DecoderClassifier" and "tokenize" in info["gpt1"]["tasks"]
        for name in ("ulmfit", "gpt1"):
            pipe = load_pipeline(saved[name])
            want = pipe.predict_proba(TEXTS)  # (N, K)
            r = c.post("/classify", json={"model": name, "inputs": TEXTS})
            assert r.status_code == 200, r.text
            for row, probs in zip(r.json()["results"], want):
                got = {d["label"]: d["score"] for d in row}
                assert set(got) == set(pipe.labels)
                for lab, p in zip(pipe.labels, probs.tolist()):
                    assert got[lab] == pytest.approx(p, abs=1e-6)
            # over the limit (40 words / 48 tokens): a 422 naming it, or cut with truncate=true
            long = " ".join(["the market rallied again"] * 30)
            r = c.post("/classify", json={"model": name, "inputs": long})
            assert r.status_code == 422 and f"model {name!r} takes at most" in r.json()["error"], r.text
            r = c.post("/classify", json={"model": name, "inputs": long, "truncate": True})
            assert r.status_code == 200
            want = pipe.predict_proba([long])[0]
            got = {d["label"]: d["score"] for d in r.json()["results"][0]}
            assert [got[lab] for lab in pipe.labels] == pytest.approx(want.tolist(), abs=1e-6)
        # the LSTM classifier has no subword tokenizer: /tokenize says which models can
        r = c.post("/tokenize", json={"model": "ulmfit", "inputs": "a"})
        assert r.status_code == 404 and "cannot tokenize" in r.json()["error"]


def test_an_lstm_language_model_folder_is_refused_with_what_to_do(saved):
    with pytest.raises(ModelLoadError, match="finetune --task classify"):
        load_model("lm", str(saved["lm"]))
