"""/embed's answer path, old against new, in one process (docs/benchmarks.md, serving session 5):
pooling row by row + FastAPI's jsonable_encoder / json.dumps (before) against pooling the pass at
once + one orjson numpy encode (now), interleaved; and the client's json.loads of each answer.

    PYTHONPATH=src python docs/scripts/serve_embed_answer.py
"""
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import torch, numpy as np, orjson
torch.set_num_threads(2)
from transferlm.serving import load_model
from transferlm.serving.models import EmbedInput
from transferlm.embeddings import contextual
from fastapi.encoders import jsonable_encoder
from serve import sentences
texts = sentences(64)
m = load_model("minilm", "minilm")
def old_run(inputs):
    out = [None] * len(inputs)
    encs = [x.enc for x in inputs]
    with torch.inference_mode():
        for idx, x, am in contextual.run_batches(encs, m.model, (m.last,), "mean", len(encs), m.pad_id):
            for r, i in enumerate(idx):
                row = x[r:r + 1]; mask = am[r:r + 1] if am is not None else None
                v = contextual.mean_pool(row, mask)
                out[i] = v[0].float().tolist()
    return out
def new_run(inputs):
    return m.run_batch("embed", inputs)
groups = [[EmbedInput(m.prepare([t], False)[0][0], "mean", False) for t in texts[k:k + 6]] for k in range(0, 60, 6)]
res = {"old": [], "new": []}
for rep in range(6):
    for name, f in (("old", old_run), ("new", new_run)):
        t0 = time.perf_counter()
        for g in groups: f(g)
        res[name].append((time.perf_counter() - t0) / len(groups) * 1000)
print("run_batch of 6 texts, ms (median of 6 x 10 groups):", {k: round(statistics.median(v), 2) for k, v in res.items()})
a = np.stack(new_run(groups[0]))[:1]
b = old_run(groups[0])[:1]
print("max |old - new|", float(np.abs(np.array(b) - a).max()))
body_old = {"model": "minilm", "dim": 384, "embeddings": b}
def enc_old(): return json.dumps(jsonable_encoder(body_old)).encode()
def enc_new(): return orjson.dumps({"model": "minilm", "dim": 384, "embeddings": a}, option=orjson.OPT_SERIALIZE_NUMPY)
for name, f in (("jsonable_encoder+json.dumps", enc_old), ("orjson numpy", enc_new)):
    t0 = time.perf_counter()
    for _ in range(2000): f()
    print(name, round((time.perf_counter() - t0) / 2000 * 1e6, 1), "us per 1-vector answer;", len(f()), "bytes")
for name, f in (("old", enc_old), ("new", enc_new)):
    s = f(); t0 = time.perf_counter()
    for _ in range(2000): json.loads(s)
    print("client json.loads of", name, round((time.perf_counter() - t0) / 2000 * 1e6, 1), "us")
