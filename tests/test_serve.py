"""`transferlm serve`: every endpoint and error over real HTTP on 127.0.0.1, /embed against
`transferlm embed` and transformers, the batching policy, the metrics read back by
prometheus_client, and the command itself in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from serve_util import Running, make_classifier, make_gpt2, make_pair_classifier, make_tagger
from transferlm.cli import main
from transferlm.data import assets
from transferlm.models import Decoder
from transferlm.pipelines import load as load_pipeline
from transferlm.serving import BatchOptions, Batcher, ServeOptions, create_app, load_model, plan_passes
from transferlm.serving.models import ModelLoadError, parse_model_spec
from transferlm.tokenization.io import load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCES = [
    "Shares fell.",
    "The central bank raised interest rates by a quarter of a point on Thursday.",
    "England beat Wales in a match that went to the last minute of extra time, and the crowd in Cardiff "
    "stayed long after the whistle to applaud both teams off the pitch.",
    "A new games console goes on sale in Japan next week.",
    "Ministers said the bill would be debated again after the summer recess.",
    "Box office takings rose for the third year running.",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    clf, clf_data = make_classifier(d / "clf")
    tag, tag_data = make_tagger(d / "tag")
    return {"clf": clf, "tag": tag, "gpt": make_gpt2(d / "gpt"), "clf_data": clf_data, "tag_data": tag_data,
            "pair": make_pair_classifier(d / "pair")}


@pytest.fixture(scope="module")
def server(folders):
    models = [load_model("minilm", "minilm"), load_model("topics", str(folders["clf"])),
              load_model("ner", str(folders["tag"])), load_model("tiny-gpt", str(folders["gpt"])),
              load_model("rte", str(folders["pair"]))]
    opts = ServeOptions(BatchOptions(max_wait_ms=100), max_body_bytes=50_000, max_inputs=8, max_new_tokens=40)
    with Running(create_app(models, opts)) as run:
        yield run


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def metrics(client) -> dict[tuple[str, tuple], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def requests_count(m, endpoint: str, status: int) -> float:
    return m.get(("transferlm_requests_total", (("endpoint", endpoint), ("status", str(status)))), 0.0)


# ---- status, models, page, docs -----------------------------------------------------------------------
def test_health_models_page_and_docs(client):
    h = client.get("/health").json()
    assert h["status"] == "ok"
    kinds = {m["name"]: (m["kind"], m["tasks"]) for m in h["models"]}
    assert kinds == {"minilm": ("encoder", ["tokenize", "embed"]), "topics": ("classifier", ["tokenize", "classify"]),
                     "ner": ("tagger", ["tokenize", "tag"]), "tiny-gpt": ("decoder", ["tokenize", "generate", "prompt"]),
                     "rte": ("classifier", ["tokenize", "classify"])}
    assert [m.get("pairs") for m in h["models"]] == [None, None, None, None, True]
    assert client.get("/models").json()["models"] == h["models"]
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js">' in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    # Swagger UI's files come from this server, not a CDN (no network here)
    srcs = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert srcs and all(s.startswith("/") for s in srcs), srcs
    assert all(client.get(s).status_code == 200 for s in srcs)
    schema = client.get("/openapi.json").json()
    assert {"/tokenize", "/embed", "/classify", "/tag", "/generate", "/generate_stream", "/prompt", "/health",
            "/metrics"} <= set(schema["paths"])
    assert "pooling" in json.dumps(schema["components"]["schemas"]["EmbedRequest"])
    assert set(schema["paths"]["/embed"]["post"]["responses"]) == {"200", "404", "413", "422", "500"}
    assert "ErrorResponse" in json.dumps(schema["paths"]["/embed"]["post"]["responses"]["422"])


# ---- the tasks ---------------------------------------------------------------------------------------
def test_tokenize_matches_tokenizers(client):
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(str(assets.path("minilm") / "tokenizer.json"))
    ref.no_padding()  # the file pads to 128; the API returns each text unpadded
    ref.no_truncation()
    r = client.post("/tokenize", json={"model": "minilm", "inputs": SENTENCES[:3]})
    assert r.status_code == 200
    for text, got in zip(SENTENCES, r.json()["results"]):
        want = ref.encode(text)
        assert got["ids"] == want.ids and got["tokens"] == want.tokens
        assert [tuple(o) for o in got["offsets"]] == want.offsets
        assert got["special"] == [bool(x) for x in want.special_tokens_mask]
    # a byte-level BPE decoder: each token shown as its stretch of the text
    g = client.post("/tokenize", json={"model": "tiny-gpt", "inputs": "the market fell"}).json()["results"][0]
    assert "".join(g["text"]) == "the market fell" and any(t.startswith("Ġ") for t in g["tokens"])


def test_classify_equals_the_pipeline(client, folders):
    texts = [t for t, _ in folders["clf_data"]][:6]
    r = client.post("/classify", json={"model": "topics", "inputs": texts})
    assert r.status_code == 200
    rows = r.json()["results"]
    clf = load_pipeline(folders["clf"])
    want = clf.predict_proba(texts)
    for row, p in zip(rows, want):
        assert [d["score"] for d in row] == sorted((d["score"] for d in row), reverse=True)
        got = dict((d["label"], d["score"]) for d in row)
        assert set(got) == set(clf.labels) and abs(sum(got.values()) - 1) < 1e-5
        np.testing.assert_allclose([got[lab] for lab in clf.labels], p, atol=1e-5)
    # the fitted model knows its training sentences
    assert [row[0]["label"] for row in rows] == [lab for _, lab in folders["clf_data"][:6]]
    # a model name in the URL instead of the body
    assert client.post("/models/topics/classify", json={"inputs": texts}).json()["results"] == rows


def test_classify_sentence_pairs(client, folders):
    a = ["The bank raised rates.", "England won the match."]
    b = ["Rates went up.", "Wales won the match."]
    r = client.post("/classify", json={"model": "rte", "inputs": a, "pairs": b})
    assert r.status_code == 200
    want = load_pipeline(folders["pair"]).predict_proba(a, b)
    for row, p in zip(r.json()["results"], want):
        got = {d["label"]: d["score"] for d in row}
        np.testing.assert_allclose([got["entailment"], got["not_entailment"]], p, atol=1e-5)
    assert "give `pairs`" in client.post("/classify", json={"model": "rte", "inputs": a}).json()["error"]
    assert "2 for 1 inputs" in client.post("/classify", json={"model": "rte", "inputs": "x", "pairs": b}).json()["error"]
    assert "single texts" in client.post("/classify", json={"model": "topics", "inputs": "x", "pairs": "y"}).json()["error"]


def test_tag_entities_with_character_offsets(client, folders):
    texts = [" ".join(w) for w, _ in folders["tag_data"][:4]]
    r = client.post("/tag", json={"inputs": texts})  # no model named: the only tagger answers
    assert r.status_code == 200 and r.json()["model"] == "ner"
    got = r.json()["results"]
    want = load_pipeline(folders["tag"]).predict(texts)
    assert sum(len(row) for row in got) > 0
    for text, g, w in zip(texts, got, want):
        assert [(e["label"], e["start"], e["end"], e["text"]) for e in g] == \
               [(e["label"], e["start"], e["end"], e["text"]) for e in w]
        for e in g:
            assert text[e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1


def test_generate_and_stream_equal_decoder_generate(client, folders):
    tok = load_tokenizer(folders["gpt"])
    model = Decoder.from_pretrained(folders["gpt"]).eval()
    prompt = "the company said"
    ids = tok.encode(prompt).ids
    want = model.generate(torch.tensor([ids]), max_new_tokens=12)[0, len(ids):].tolist()
    body = {"model": "tiny-gpt", "inputs": prompt, "parameters": {"max_new_tokens": 12}}
    r = client.post("/generate", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["generated_text"] == tok.decode(want) and out["tokens"] == 12 and out["finish_reason"] == "length"
    assert out["prompt_tokens"] == len(ids)
    # the stream: one event per token, then one with the whole text
    events = []
    with client.stream("POST", "/generate_stream", json=body) as s:
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        for line in s.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    tokens = [e["token"] for e in events[:-1]]
    assert [t["id"] for t in tokens] == want
    assert "".join(t["text"] for t in tokens) == out["generated_text"] == events[-1]["generated_text"]
    assert events[-1]["token"] is None and events[-1]["tokens"] == 12
    # seeded sampling repeats; a different seed (almost surely) differs
    samp = {**body, "parameters": {"max_new_tokens": 12, "temperature": 1.5, "seed": 7}}
    a, b = (client.post("/generate", json=samp).json()["generated_text"] for _ in range(2))
    assert a == b
    c = client.post("/generate", json={**samp, "parameters": {**samp["parameters"], "seed": 8}}).json()
    assert c["generated_text"] != a
    # a client that leaves in the middle of a stream: the server stops that stream and goes on
    with httpx.Client(base_url=client.base_url, timeout=60) as leaver:
        with leaver.stream("POST", "/generate_stream", json={**body, "parameters": {"max_new_tokens": 40}}) as s:
            first = next(line for line in s.iter_lines() if line.startswith("data: "))
            assert json.loads(first[6:])["token"]["id"] == want[0]
    assert client.post("/generate", json=body).json()["generated_text"] == out["generated_text"]


def test_errors_are_clear_and_the_server_goes_on(client):
    def err(r, status):
        assert r.status_code == status, (r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error", "error_type"} and body["error"]
        return body["error"]

    assert "unknown model 'nope'" in err(client.post("/embed", json={"model": "nope", "inputs": "x"}), 404)
    assert "minilm (encoder: tokenize, embed)" in err(client.post("/embed", json={"model": "nope", "inputs": "x"}), 404)
    assert "cannot classify" in err(client.post("/classify", json={"model": "minilm", "inputs": "x"}), 404)
    assert "unknown model" in err(client.post("/models/nope/embed", json={"inputs": "x"}), 404)
    assert "no endpoint POST /predict" in err(client.post("/predict", json={"inputs": "x"}), 404)
    err(client.get("/embed"), 405)
    # body limits (413)
    assert "at most 50000" in err(client.post("/embed", json={"inputs": "word " * 20_000}), 413)
    assert "9 texts" in err(client.post("/embed", json={"inputs": ["a"] * 9}), 413)
    # validation (422)
    assert "invalid JSON" in err(client.post("/embed", content=b'{"inputs": ["a",]}'), 422)
    assert "invalid JSON" in err(client.post("/embed", content=b'{"inputs": "a"',
                                             headers={"content-type": "text/plain"}), 422)
    assert "missing field 'inputs'" in err(client.post("/embed", json={"pooling": "mean"}), 422)
    assert "expected a text or a list of texts" in err(client.post("/embed", json={"inputs": [1, 2]}), 422)
    assert "'mean' or 'cls'" in err(client.post("/embed", json={"inputs": "a", "pooling": "max"}), 422)
    assert "empty list" in err(client.post("/embed", json={"inputs": []}), 422)
    assert "Extra inputs" in err(client.post("/embed", json={"inputs": "a", "colour": "red"}), 422)
    long = "market " * 600
    assert "takes at most 512" in err(client.post("/embed", json={"inputs": ["ok", long]}), 422)
    assert "inputs[1]" in err(client.post("/embed", json={"inputs": ["ok", long]}), 422)
    assert "takes at most 64" in err(client.post("/classify", json={"inputs": long[:1000]}), 422)
    assert client.post("/classify", json={"inputs": long[:1000], "truncate": True}).status_code == 200
    assert client.post("/embed", json={"inputs": long, "truncate": True}).status_code == 200
    tagged_text = "Empire State Building " + long[:1000]
    tagged = client.post("/tag", json={"inputs": tagged_text})  # taggers window long texts: no token limit
    assert tagged.status_code == 200
    assert all(tagged_text[e["start"]:e["end"]] == e["text"] for e in tagged.json()["results"][0])
    assert "at most 40" in err(client.post("/generate", json={"inputs": "a", "parameters": {"max_new_tokens": 41}}), 422)
    assert "prompt tokens" in err(client.post("/generate", json={"inputs": "the " * 100,
                                                                  "parameters": {"max_new_tokens": 40}}), 422)
    assert "<|im_start|>" in err(client.post("/generate", json={"inputs": "a", "chat": True}), 422)
    assert "top_p" in err(client.post("/generate", json={"inputs": "a", "parameters": {"top_p": 2}}), 422)
    assert "URL names model" in err(client.post("/models/minilm/embed", json={"model": "topics", "inputs": "a"}), 422)
    assert client.get("/health").status_code == 200


def test_an_input_that_raises_gets_a_500_and_its_batch_mates_their_answers(server, client):
    m = server.app.state.server.models["minilm"]
    real = m.run_batch

    def fragile(task, inputs):  # the model raises on one input (as a real bug on odd input would)
        if any("explode" in x.enc.tokens for x in inputs):
            raise RuntimeError("cannot embed 'explode'")
        return real(task, inputs)

    m.run_batch = fragile
    try:
        texts = ["markets rose", "please explode", "the match was drawn", "rain later"]
        with ThreadPoolExecutor(4) as pool:
            rs = list(pool.map(lambda t: client.post("/embed", json={"inputs": t}), texts))
    finally:
        m.run_batch = real
    assert [r.status_code for r in rs] == [200, 500, 200, 200]
    assert "cannot embed 'explode'" in rs[1].json()["error"] and rs[1].json()["error_type"] == "internal"
    alone = [client.post("/embed", json={"inputs": t}).json()["embeddings"][0] for t in texts[::2]]
    np.testing.assert_allclose([rs[0].json()["embeddings"][0], rs[2].json()["embeddings"][0]], alone, atol=1e-5)
    assert client.post("/embed", json={"inputs": "please explode"}).status_code == 200  # served again


def test_metrics_count_requests_batches_and_queue(client):
    before = metrics(client)
    with ThreadPoolExecutor(6) as pool:
        rs = list(pool.map(lambda t: client.post("/embed", json={"inputs": t}), SENTENCES))
    assert all(r.status_code == 200 for r in rs)
    client.post("/embed", json={"inputs": []})
    after = metrics(client)
    assert requests_count(after, "/embed", 200) - requests_count(before, "/embed", 200) == 6
    assert requests_count(after, "/embed", 422) - requests_count(before, "/embed", 422) == 1
    key = lambda name, **lab: (name, tuple(sorted(lab.items())))  # noqa: E731
    n = key("transferlm_batch_size_count", model="minilm", task="embed")
    s = key("transferlm_batch_size_sum", model="minilm", task="embed")
    assert after[s] - before.get(s, 0) == 6  # six inputs computed ...
    assert after[n] - before.get(n, 0) < 6  # ... in fewer passes: concurrent requests were batched
    assert after[key("transferlm_queue_length", model="minilm")] == 0
    assert after[key("transferlm_request_duration_seconds_count", endpoint="/embed")] >= 7
    assert key("transferlm_inputs_total", model="minilm", task="embed") in after


# ---- /embed against `transferlm embed` and transformers ------------------------------------------------
def test_embed_equals_cli_and_transformers_batched_or_not(tmp_path, server, client):
    from transformers import BertModel

    texts = SENTENCES
    f = tmp_path / "lines.txt"
    f.write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["embed", "--model", "minilm", "--input", str(f), "--out", str(tmp_path / "v.npy")]) == 0
    cli = np.load(tmp_path / "v.npy")
    ref_tok = load_tokenizer(assets.path("minilm"))
    hf = BertModel.from_pretrained(assets.path("minilm")).eval()
    want = []
    with torch.no_grad():
        for t in texts:  # one text at a time, no padding: the plain reference
            ids = torch.tensor([ref_tok.encode(t).ids])
            want.append(hf(input_ids=ids).last_hidden_state.mean(1)[0].numpy())
    want = np.stack(want)
    np.testing.assert_allclose(cli, want, atol=1e-5)

    # batched: concurrent one-text requests gathered by the batcher, and one request of all texts
    with ThreadPoolExecutor(len(texts)) as pool:
        one_each = np.array([r.json()["embeddings"][0] for r in
                             pool.map(lambda t: client.post("/embed", json={"inputs": t}), texts)])
    together = np.array(client.post("/embed", json={"inputs": texts}).json()["embeddings"])
    np.testing.assert_allclose(one_each, want, atol=1e-5)
    np.testing.assert_allclose(together, want, atol=1e-5)
    # pooling options as the CLI's
    assert main(["embed", "--model", "minilm", "--input", str(f), "--out", str(tmp_path / "c.npy"),
                 "--pooling", "cls", "--normalize"]) == 0
    cls = np.array(client.post("/embed", json={"inputs": texts, "pooling": "cls", "normalize": True}).json()["embeddings"])
    np.testing.assert_allclose(cls, np.load(tmp_path / "c.npy"), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(cls, axis=1), 1.0, atol=1e-5)

    # not batched: a server that runs one request per pass
    off = ServeOptions(BatchOptions(enabled=False))
    with Running(create_app([server.app.state.server.models["minilm"]], off)) as run, \
            httpx.Client(base_url=run.url, timeout=60) as c2:
        with ThreadPoolExecutor(len(texts)) as pool:
            alone = np.array([r.json()["embeddings"][0] for r in
                              pool.map(lambda t: c2.post("/embed", json={"inputs": t}), texts)])
        m = metrics(c2)
    np.testing.assert_allclose(alone, want, atol=1e-5)
    size = lambda k: m[(k, (("model", "minilm"), ("task", "embed")))]  # noqa: E731
    assert size("transferlm_batch_size_count") == size("transferlm_batch_size_sum") == len(texts)  # all passes of 1


# ---- the batching policy -------------------------------------------------------------------------------
def test_plan_passes_sorts_by_length_and_keeps_the_budget():
    lengths = [5, 40, 7, 38, 6, 100, 39, 8]
    passes = plan_passes(lengths, 120)
    assert sorted(i for p in passes for i in p) == list(range(len(lengths)))
    for p in passes:
        ls = [lengths[i] for i in p]
        assert ls == sorted(ls, reverse=True)
        assert len(p) == 1 or len(p) * ls[0] <= 120
    assert [[lengths[i] for i in p] for p in passes] == [[100], [40, 39, 38], [8, 7, 6, 5]]
    assert plan_passes([300, 2], 100) == [[0], [1]]  # longer than the budget: alone


def test_plan_passes_with_a_pass_cost_is_the_cheapest_cut():
    import itertools
    import random

    rng = random.Random(0)
    for _ in range(60):
        lengths = [rng.randint(3, 120) for _ in range(rng.randint(1, 9))]
        budget, c = rng.choice([200, 500, 10_000]), rng.choice([1, 30, 150, 1000])
        srt = sorted(lengths, reverse=True)

        def cost(bounds):  # passes = consecutive runs of the sorted lengths
            total = 0
            for a, b in zip(bounds, bounds[1:]):
                if b - a > 1 and (b - a) * srt[a] > budget:
                    return float("inf")
                total += (b - a) * srt[a] + c
            return total

        n = len(srt)
        brute = min(cost([0, *cuts, n]) for k in range(n) for cuts in itertools.combinations(range(1, n), k))
        passes = plan_passes(lengths, budget, c)
        assert sorted(i for p in passes for i in p) == list(range(n))
        got = [len(p) for p in passes]
        assert cost([0, *itertools.accumulate(got)]) == brute
        assert [lengths[i] for p in passes for i in p] == srt
    # mixed lengths: the short texts are not padded to the long one when a pass costs little
    assert [[[5, 100, 6, 7][i] for i in p] for p in plan_passes([5, 100, 6, 7], 1000, 10)] == [[100], [7, 6, 5]]
    assert len(plan_passes([5, 100, 6, 7], 1000, 1000)) == 1


def test_batcher_gathers_concurrent_requests_and_isolates_failures():
    passes: list[list[str]] = []

    def run(xs: list[str]) -> list[int]:
        passes.append(list(xs))
        if "bad" in xs:
            raise ValueError("bad input")
        return [len(x) for x in xs]

    async def scenario(options: BatchOptions, requests: list[list[str]]):
        b = Batcher("m", "embed", run, options, ThreadPoolExecutor(1))
        return await asyncio.gather(*(b.submit(r, [len(x) for x in r]) for r in requests),
                                    return_exceptions=True)

    reqs = [["aa"], ["bbbb", "c"], ["dddddd"], ["ee"]]
    out = asyncio.run(scenario(BatchOptions(max_batch_tokens=100, max_wait_ms=50), reqs))
    assert out == [[2], [4, 1], [6], [2]]
    assert passes == [["dddddd", "bbbb", "aa", "ee", "c"]]  # one pass, longest first
    passes.clear()
    out = asyncio.run(scenario(BatchOptions(enabled=False), reqs))
    assert out == [[2], [4, 1], [6], [2]] and passes == [["aa"], ["bbbb", "c"], ["dddddd"], ["ee"]]
    passes.clear()
    out = asyncio.run(scenario(BatchOptions(max_batch_tokens=100, max_wait_ms=50), [["x"], ["bad"], ["yy"]]))
    assert out[0] == [1] and out[2] == [2] and isinstance(out[1], ValueError)
    assert passes[0] == ["bad", "yy", "x"] and sorted(map(tuple, passes[1:])) == [("bad",), ("x",), ("yy",)]
    passes.clear()
    out = asyncio.run(scenario(BatchOptions(max_batch_tokens=8, max_wait_ms=50), [["aaaa"], ["bbbb"], ["cccc"]]))
    assert out == [[4], [4], [4]] and all(sum(map(len, p)) <= 8 for p in passes) and len(passes) == 2


# ---- loading and the command ---------------------------------------------------------------------------
def test_model_specs_and_load_errors(tmp_path):
    assert parse_model_spec("minilm") == ("minilm", "minilm")
    assert parse_model_spec("ner=runs/tagger/") == ("ner", "runs/tagger/")
    assert parse_model_spec("runs/tagger/") == ("tagger", "runs/tagger/")
    with pytest.raises(ModelLoadError, match="NAME=SOURCE"):
        parse_model_spec("=x")
    with pytest.raises(ModelLoadError, match="data, not a model"):
        load_model("p", "ptb")
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model("x", str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="without config.json"):
        load_model("x", str(tmp_path))
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="expected a .gguf"):
        load_model("x", str(tmp_path / "w.bin"))


def test_a_batched_task_a_model_does_not_serve_is_refused_by_name():
    """run_batch's guard: the task, the model and what it serves (routing never sends such a task)."""
    from transferlm.serving.models import UnsupportedTask

    m = load_model("minilm", "minilm")
    with pytest.raises(UnsupportedTask, match=r"encoder model 'minilm' does not classify \(it serves: tokenize, embed\)"):
        m.run_batch("classify", [("a text", None)])


def test_cli_serve_in_a_subprocess(tmp_path, capsys):
    assert main(["serve", "--model", "ptb"]) == 2
    assert "data, not a model" in capsys.readouterr().err
    assert main(["serve", "--model", "a=minilm", "--model", "a=minilm"]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main(["serve", "--model", "minilm", "--max-batch-tokens", "0"]) == 2
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "transferlm", "serve", "--model", "minilm", "--port", "0",
                             "--threads", "1", "--log-level", "warning"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        url, deadline = None, time.time() + 120
        while url is None and time.time() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
            url = m.group(1) if m else None
        assert url, "the server did not say where it listens"
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.get("/health").json()["models"][0]["name"] == "minilm"
            v = c.post("/embed", json={"inputs": "hello"}).json()["embeddings"][0]
            assert len(v) == 384
    finally:
        proc.send_signal(2)  # Ctrl-C
        rc = proc.wait(timeout=30)
    assert rc == 0


def test_decoder_stream_and_on_token_give_generate_s_tokens(folders):
    model = Decoder.from_pretrained(folders["gpt"]).eval()
    ids = torch.tensor([load_tokenizer(folders["gpt"]).encode("the market").ids])
    seen = []
    full = model.generate(ids, max_new_tokens=7, on_token=lambda t: seen.append(int(t[0])))
    assert seen == [int(t[0]) for t in model.stream(ids, max_new_tokens=7)] == full[0, ids.shape[1]:].tolist()
