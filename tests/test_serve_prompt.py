"""`transferlm serve`'s /prompt over real HTTP on 127.0.0.1: the label probabilities equal what the
prompting Python API (PromptClassifier, what `transferlm prompt classify` runs) gives for the same
labels, verbalizers, demonstrations and calibration, on a tiny GPT-2 and on the SmolLM2 asset; and
the errors (unknown label, empty verbalizer, a prompt over the context) are 422s that say why."""

from __future__ import annotations

import httpx
import pytest

from serve_util import Running, bbc_examples, make_gpt2
from transferlm.models import Decoder
from transferlm.prompting import PromptClassifier, PromptOptions
from transferlm.serving import ServeOptions, create_app, load_model
from transferlm.tokenization.io import load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["Shares in the carmaker fell after profits slipped.", "The striker scored twice in the second half."]


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    return make_gpt2(tmp_path_factory.mktemp("prompt") / "gpt", positions=512)


@pytest.fixture(scope="module")
def served(gpt):
    with Running(create_app([load_model("tiny-gpt", str(gpt))], ServeOptions(max_inputs=8))) as run, \
            httpx.Client(base_url=run.url, timeout=120) as client:
        yield client


def short_pool() -> list[tuple[str, str]]:
    return [(t[:80], lab) for t, lab in bbc_examples(2)]  # 2 per class, 5 BBC topics


@pytest.mark.parametrize("calibrate", ["none", "contextual", "pmi"])
def test_prompt_probabilities_equal_the_prompting_api(gpt, served, calibrate):
    pool = short_pool()
    labels = sorted({lab for _, lab in pool})
    verbalizers = {"tech": "technology", "entertainment": "films"}
    clf = PromptClassifier(Decoder.from_pretrained(gpt), load_tokenizer(gpt), labels, verbalizers,
                           options=PromptOptions(shots=1, select="balanced", calibrate=calibrate)).fit(pool)
    demos = clf.demonstrations()
    assert len(demos) == len(labels)
    want = clf.classify(TEXTS)
    r = served.post("/prompt", json={"inputs": TEXTS, "labels": {lab: verbalizers.get(lab, lab) for lab in labels},
                                     "demonstrations": [{"text": t, "label": lab} for t, lab in demos],
                                     "calibrate": calibrate})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny-gpt" and body["calibrate"] == calibrate and body["demonstrations"] == len(labels)
    for got, ref in zip(body["results"], want):
        probs = {d["label"]: d["score"] for d in got["probabilities"]}
        assert set(probs) == set(labels)
        for lab in labels:
            assert probs[lab] == pytest.approx(ref["probs"][lab], abs=1e-6)
            assert got["log_scores"][lab] == pytest.approx(ref["scores"][lab], abs=1e-5)
        assert got["label"] == ref["label"] == got["probabilities"][0]["label"]
        scores = [d["score"] for d in got["probabilities"]]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-5)


def test_prompt_errors_say_what_is_wrong(served):
    base = {"inputs": "Shares fell.", "labels": ["business", "sport"]}
    cases = [
        ({**base, "demonstrations": [{"text": "Goal!", "label": "football"}]}, "football"),
        ({**base, "labels": {"business": "business", "sport": ""}}, "verbalizer"),
        ({**base, "labels": []}, "labels"),
        ({**base, "labels": ["sport", "sport"]}, "twice"),
        ({**base, "labels": "sport"}, "labels: expected a list of labels or an object"),
        ({**base, "calibrate": "platt"}, "calibrate"),
        ({"inputs": "Shares fell."}, "missing field 'labels'"),
        ({**base, "chat": True}, "chat"),  # the tiny GPT-2 folder has no chat template
    ]
    for body, words in cases:
        r = served.post("/prompt", json=body)
        assert r.status_code == 422, (body, r.text)
        assert words in r.json()["error"], (body, r.json())
    # over the context (512 positions): the message says how long the prompt is and the limit
    long = " ".join(["the market rallied again"] * 200)
    r = served.post("/prompt", json={**base, "inputs": long})
    assert r.status_code == 422
    msg = r.json()["error"]
    assert "prompt too long" in msg and "context of 512" in msg and "more than" in msg, msg
    # overflow=clip drops the test text's tail instead and says how many tokens it dropped
    r = served.post("/prompt", json={**base, "inputs": long, "overflow": "clip"})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["clipped_tokens"] > 0
    # the server goes on, and the endpoint is in the OpenAPI schema
    assert served.post("/prompt", json=base).status_code == 200
    schema = served.get("/openapi.json").json()
    assert "/prompt" in schema["paths"] and "PromptRequest" in schema["components"]["schemas"]


def test_prompt_with_smollm2_equals_the_prompting_api():
    smol = load_model("smollm2", "smollm2")
    pool = [("Shares fell sharply in London.", "business"), ("England beat Wales at Twickenham.", "sport"),
            ("Profits rose at the bank.", "business"), ("The striker was sent off.", "sport")]
    clf = PromptClassifier(smol.model, smol.tokenizer, ["business", "sport"],
                           options=PromptOptions(shots=1, calibrate="contextual")).fit(pool)
    want = clf.classify(TEXTS)
    with Running(create_app([smol])) as run, httpx.Client(base_url=run.url, timeout=120) as client:
        r = client.post("/prompt", json={"inputs": TEXTS, "labels": ["business", "sport"], "calibrate": "contextual",
                                         "demonstrations": [{"text": t, "label": lab}
                                                            for t, lab in clf.demonstrations()]})
    assert r.status_code == 200, r.text
    got = r.json()["results"]
    assert [g["label"] for g in got] == [w["label"] for w in want] == ["business", "sport"]
    for g, w in zip(got, want):
        for d in g["probabilities"]:
            assert d["score"] == pytest.approx(w["probs"][d["label"]], abs=1e-6)
