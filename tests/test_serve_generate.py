"""Continuous batching of generation in `transferlm serve`, over real HTTP on 127.0.0.1: concurrent
greedy /generate and /generate_stream requests with prompts of different lengths are decoded in
one batch (the metrics show steps of several rows) and each gets token for token what its prompt
gives alone; a seeded sampled request too; a client that goes away mid-stream leaves the batch."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from serve_util import Running, make_gpt2
from transferlm.serving import BatchOptions, ServeOptions, create_app, load_model
from transferlm.serving.models import GenerateOptions

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["the", "the company said", "shares of the company rose sharply in early trading on monday",
           "in new york", "the market closed higher after the federal reserve said it would keep rates",
           "analysts said", "a spokesman for the bank declined to comment on the report"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    m = load_model("tiny-gpt", str(make_gpt2(tmp_path_factory.mktemp("gen") / "gpt", positions=256)))
    with Running(create_app([m], ServeOptions(BatchOptions(max_decode_rows=4), max_new_tokens=64))) as run:
        yield run, m


def alone(m, prompt: str, n: int, seed: int | None = None, temperature: float = 1.0) -> list[int]:
    ids = m.prompt_ids(prompt, False)
    return list(m.steps(ids, GenerateOptions(n, seed is not None, temperature, None, None, seed, m.stops(False))))


async def one(client: httpx.AsyncClient, i: int, prompt: str, n: int) -> list[int]:
    body = {"inputs": prompt, "parameters": {"max_new_tokens": n}}
    if i % 2 == 0:
        r = await client.post("/generate", json=body)
        assert r.status_code == 200, r.text
        return r.json()["token_ids"]
    toks = []
    async with client.stream("POST", "/generate_stream", json=body) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                ev = json.loads(line[6:])
                if ev["token"] is not None:
                    toks.append(ev["token"]["id"])
    return toks


def batch_rows(url: str) -> tuple[float, float]:
    text = httpx.get(url + "/metrics").text
    got = {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
           if s.name.startswith("transferlm_batch_size_") and s.labels.get("task") == "generate"}
    return got.get("transferlm_batch_size_sum", 0.0), got.get("transferlm_batch_size_count", 0.0)


def test_concurrent_greedy_requests_equal_each_alone(served):
    run, m = served
    lengths = [40 + 3 * i for i in range(len(PROMPTS))]

    async def main():
        async with httpx.AsyncClient(base_url=run.url, timeout=60) as client:
            return await asyncio.gather(*(one(client, i, p, n) for i, (p, n) in enumerate(zip(PROMPTS, lengths))))

    before = batch_rows(run.url)
    got = asyncio.run(main())
    rows, steps = (a - b for a, b in zip(batch_rows(run.url), before))
    want = [alone(m, p, n) for p, n in zip(PROMPTS, lengths)]
    assert [len(g) for g in got] == lengths
    assert got == want
    assert steps > 0 and rows / steps > 1.5, (rows, steps)  # decoded together, not one after another
    assert rows / steps <= 4  # max_decode_rows: the others waited to join


def test_seeded_sampling_and_a_client_that_leaves(served):
    run, m = served

    async def main():
        async with httpx.AsyncClient(base_url=run.url, timeout=60) as client:
            sampled = client.post("/generate", json={"inputs": "the company said", "parameters": {
                "max_new_tokens": 30, "temperature": 0.8, "seed": 7}})
            greedy = one(client, 0, PROMPTS[2], 35)

            async def leaver():  # reads three tokens, then closes the connection
                n = 0
                async with client.stream("POST", "/generate_stream", json={
                        "inputs": PROMPTS[1], "parameters": {"max_new_tokens": 60}}) as r:
                    async for line in r.aiter_lines():
                        n += line.startswith("data: ")
                        if n == 3:
                            break
                return n
            return await asyncio.gather(sampled, greedy, leaver())

    sampled, greedy, left = asyncio.run(main())
    assert sampled.status_code == 200 and left == 3
    assert sampled.json()["token_ids"] == alone(m, "the company said", 30, seed=7, temperature=0.8)
    assert greedy == alone(m, PROMPTS[2], 35)
    # the server goes on: a later request is answered, and nothing is left in the batch
    r = httpx.post(run.url + "/generate", json={"inputs": "the", "parameters": {"max_new_tokens": 5}}, timeout=60)
    assert r.status_code == 200 and r.json()["token_ids"] == alone(m, "the", 5)
    assert run.app.state.server.generators["tiny-gpt"].active == []
