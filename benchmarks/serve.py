"""Load test of `transferlm serve`: /embed with MiniLM (dynamic batching) or /generate with SmolLM2
(continuous batching), batching on vs one request at a time.

    flock /tmp/heavy.lock python benchmarks/serve.py                # 32 clients, 20 s per mode
    python benchmarks/serve.py --clients 8 --seconds 5 --modes on   # a quick look
    python benchmarks/serve.py --calibrate --modes off,on,on:auto   # + the pass-cost fit, used by a server
    flock /tmp/heavy.lock python benchmarks/serve.py --task generate --clients 8 --seconds 60

--task generate: a server with `--model smollm2`; N clients each send greedy /generate requests
(a real BBC News sentence of 5 to 60 tokens as the prompt, --new-tokens tokens, default 32) for T
seconds, waiting for each answer. Printed per mode: generated tokens/s, p50 / p99 request
latency, the mean sequences per decode step (from /metrics), the ratio of the batched to the
one-at-a-time tokens/s, and how many prompts answered in both modes got different tokens (greedy
outputs must be identical: continuous batching changes the schedule, not the result).

For each mode a server is started as its own process (`transferlm serve --model minilm`, on
127.0.0.1 only, `--threads 2`), then N concurrent clients send one real BBC News sentence each per
request (mixed lengths: 3 to 120 tokens) for T seconds, each client waiting for its answer before
sending the next. Meanwhile one more client sends malformed and oversized requests (invalid JSON,
a missing field, a wrong type, a 1.2 MB body, 65 texts, a 600-token text), which must be refused
with their 413 / 422 and a message, while every real request must succeed.

Printed: requests/s, p50 / p99 latency, the mean texts per forward pass (from /metrics), the
ratio of the batched to the one-at-a-time rate (the goal: >= 3x at 32 clients, p99 < 1 s), and
a last line of JSON. The clients run in this process (asyncio + httpx), so they share the
2 cores with the server: the rates include that cost for both modes alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from transferlm.data import assets  # noqa: E402


def sentences(n: int, seed: int = 0) -> list[str]:
    """Real BBC News sentences of mixed length (3..120 MiniLM tokens), a seeded sample."""
    from transferlm.tokenization.io import load_tokenizer

    tok = load_tokenizer(assets.path("minilm"))
    pool = []
    for text, _ in assets.bbc_news():
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if len(s) > 10:
                pool.append(s)
    rng = random.Random(seed)
    rng.shuffle(pool)
    out = []
    for s in pool:
        if 3 <= len(tok.encode(s).ids) <= 120:
            out.append(s)
        if len(out) == n:
            break
    return out


def start_server(mode: str, threads: int, model: str = "minilm", http: str = "auto") -> tuple[subprocess.Popen, str]:
    """mode: off (one request per pass), on (the server's defaults), on:C (--pass-cost-tokens C)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    extra = ["--no-batching"] if mode == "off" else (["--pass-cost-tokens", mode[3:]] if mode.startswith("on:") else [])
    cmd = [sys.executable, "-m", "transferlm", "serve", "--model", model, "--host", "127.0.0.1", "--port", "0",
           "--threads", str(threads), "--log-level", "warning", "--http", http] + extra
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        m = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise RuntimeError("the server did not start in 300 s")


@contextmanager
def served(mode: str, threads: int, model: str = "minilm", http: str = "auto"):
    """The URL of a server started by `start_server`, stopped (Ctrl-C, then kill) on the way out."""
    proc, url = start_server(mode, threads, model, http)
    try:
        yield url
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


BAD_REQUESTS = [  # (what, body bytes, expected status)
    ("invalid JSON", b'{"inputs": ["a",', 422),
    ("missing field", json.dumps({"pooling": "mean"}).encode(), 422),
    ("wrong type", json.dumps({"inputs": 42}).encode(), 422),
    ("1.2 MB body", json.dumps({"inputs": "word " * 240_000}).encode(), 413),
    ("65 texts", json.dumps({"inputs": ["a short text"] * 65}).encode(), 413),
    ("600-token text", json.dumps({"inputs": "market " * 600}).encode(), 422),
]


async def load(url: str, texts: list[str], clients: int, seconds: float, seed: int) -> dict:
    lat: list[float] = []
    failures: list[str] = []
    bad = {"sent": 0, "wrong": []}
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        async def worker(k: int) -> None:
            rng = random.Random(seed * 1000 + k)
            while time.perf_counter() < stop_at:
                t = rng.choice(texts)
                t0 = time.perf_counter()
                try:
                    r = await client.post("/embed", json={"inputs": t})
                    ok = r.status_code == 200 and len(r.json()["embeddings"][0]) == 384
                except Exception as e:  # noqa: BLE001 - counted as a failure
                    ok, r = False, e
                if ok:
                    lat.append(time.perf_counter() - t0)
                else:
                    failures.append(str(getattr(r, "text", r))[:200])

        async def mischief() -> None:
            i = 0
            while time.perf_counter() < stop_at:
                what, body, want = BAD_REQUESTS[i % len(BAD_REQUESTS)]
                i += 1
                r = await client.post("/embed", content=body, headers={"content-type": "application/json"})
                bad["sent"] += 1
                if r.status_code != want or not r.json().get("error"):
                    bad["wrong"].append(f"{what}: got {r.status_code} {r.text[:100]}")
                await asyncio.sleep(0.2)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)), mischief())
        elapsed = time.perf_counter() - t0
        m = (await client.get("/metrics")).text
    sizes = {k: float(v) for k, v in re.findall(r'transferlm_batch_size_(sum|count)\{model="minilm",task="embed"\} (\S+)', m)}
    lat.sort()
    return {"requests": len(lat), "failed": len(failures), "failures": failures[:3], "seconds": round(elapsed, 2),
            "rps": len(lat) / elapsed,
            "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
            "mean_batch": sizes.get("sum", 0) / max(sizes.get("count", 1), 1),
            "bad_sent": bad["sent"], "bad_wrong": bad["wrong"][:3]}


def prompts(n: int, seed: int = 0) -> list[str]:
    """Real BBC News sentences of 5..60 SmolLM2 tokens, as generation prompts (a seeded sample)."""
    from transferlm.tokenization.bpe import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer.from_gguf(assets.path("smollm2"))
    pool = [s for text, _ in assets.bbc_news() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split()))]
    random.Random(seed).shuffle(pool)
    return [s for s in pool if 5 <= len(tok.encode(s).ids) <= 60][:n]


async def load_generate(url: str, texts: list[str], clients: int, seconds: float, new_tokens: int,
                        seed: int) -> dict:
    lat: list[float] = []
    failures: list[str] = []
    outputs: dict[str, list[int]] = {}
    tokens = 0
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        async def worker(k: int) -> None:
            nonlocal tokens
            rng = random.Random(seed * 1000 + k)
            while time.perf_counter() < stop_at:
                t = rng.choice(texts)
                t0 = time.perf_counter()
                try:
                    r = await client.post("/generate", json={"inputs": t, "parameters": {"max_new_tokens": new_tokens}})
                    ok = r.status_code == 200
                except Exception as e:  # noqa: BLE001 - counted as a failure
                    ok, r = False, e
                if ok:
                    lat.append(time.perf_counter() - t0)
                    tokens += r.json()["tokens"]
                    outputs[t] = r.json()["token_ids"]
                else:
                    failures.append(str(getattr(r, "text", r))[:200])

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - t0
        m = (await client.get("/metrics")).text
    sizes = {k: float(v) for k, v in
             re.findall(r'transferlm_batch_size_(sum|count)\{model="smollm2",task="generate"\} (\S+)', m)}
    lat.sort()
    return {"requests": len(lat), "failed": len(failures), "failures": failures[:3], "seconds": round(elapsed, 2),
            "tokens": tokens, "tok_s": tokens / elapsed, "rps": len(lat) / elapsed,
            "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
            "mean_rows": sizes["sum"] / sizes["count"] if sizes.get("count") else 1.0,  # off: one at a time
            "outputs": outputs}


def main_generate(args) -> int:
    texts = prompts(64, args.seed)  # a small pool: most prompts are answered in both modes
    print(f"{len(texts)} BBC sentences as prompts (5..60 SmolLM2 tokens); {args.clients} clients x "
          f"{args.seconds:.0f} s per mode, {args.new_tokens} greedy new tokens each; server --threads {args.threads}")
    results = {}
    for mode in args.modes.split(","):
        with served(mode, args.threads, "smollm2", args.http) as url:
            with httpx.Client(base_url=url, timeout=600) as c:  # warm up
                c.post("/generate", json={"inputs": texts[0], "parameters": {"max_new_tokens": 4}}).raise_for_status()
            res = asyncio.run(load_generate(url, texts, args.clients, args.seconds, args.new_tokens, args.seed))
        results[mode] = res
        print(f"batching {mode:6s}: {res['tok_s']:7.1f} tokens/s  {res['rps']:5.2f} req/s  p50 {res['p50_ms']:7.0f} ms  "
              f"p99 {res['p99_ms']:7.0f} ms  {res['requests']} ok, {res['failed']} failed; "
              f"mean {res['mean_rows']:.1f} sequences/step")
        for f in res["failures"]:
            print("   ", f)
    summary = {"task": "generate", "clients": args.clients, "seconds": args.seconds, "new_tokens": args.new_tokens,
               "threads": args.threads,
               **{f"{k}_{mode}": (round(v, 2) if isinstance(v, float) else v) for mode, r in results.items()
                  for k, v in r.items() if k in ("tok_s", "rps", "p50_ms", "p99_ms", "requests", "failed", "mean_rows")}}
    ok = all(r["failed"] == 0 for r in results.values())
    if "on" in results and "off" in results:
        ratio = results["on"]["tok_s"] / results["off"]["tok_s"]
        both = set(results["on"]["outputs"]) & set(results["off"]["outputs"])
        differ = sum(results["on"]["outputs"][t] != results["off"]["outputs"][t] for t in both)
        print(f"continuous batching: {ratio:.2f}x the tokens/s of one sequence at a time; "
              f"{len(both)} prompts answered in both modes, {differ} with different greedy tokens")
        summary.update(speedup=round(ratio, 2), prompts_in_both=len(both), greedy_differ=differ)
        ok = ok and differ == 0
    summary["all_clean"] = ok
    print(json.dumps(summary))
    return 0 if ok else 1


def calibrate(threads: int) -> float:
    """Forward time of MiniLM for B x T token batches; the fixed cost of a pass in token-equivalents."""
    import numpy as np
    import torch

    from transferlm.embeddings import contextual

    torch.set_num_threads(threads)
    model, _ = contextual.load("minilm")
    shapes = [(1, 8), (1, 32), (1, 128), (4, 32), (8, 16), (8, 64), (16, 32), (32, 32), (32, 64), (16, 128)]
    rows = []
    with torch.inference_mode():
        for B, T in shapes:
            ids = torch.randint(1000, 20000, (B, T))
            model(input_ids=ids)
            best = min(_timed(model, ids) for _ in range(7))  # the least disturbed of 7 runs
            rows.append((B * T, best))
            print(f"  forward {B:2d} x {T:3d} = {B * T:4d} tokens: {1000 * best:7.2f} ms")
    x = np.array(rows)
    fixed, per_token = np.linalg.lstsq(np.c_[np.ones(len(x)), x[:, 0]], x[:, 1], rcond=None)[0]
    print(f"calibration: forward = {1000 * fixed:.2f} ms + {1e6 * per_token:.1f} us x tokens; a pass's fixed "
          f"cost = {fixed / per_token:.0f} token-equivalents")
    del model
    return float(fixed / per_token)


def _timed(model, ids) -> float:
    t0 = time.perf_counter()
    model(input_ids=ids)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server (default: 2)")
    ap.add_argument("--modes", default="off,on",
                    help="comma-separated: off (one request at a time), on (dynamic batching, the defaults), "
                         "on:C (with --pass-cost-tokens C), on:auto (C from --calibrate)")
    ap.add_argument("--calibrate", action="store_true",
                    help="first time MiniLM forward passes of B x T tokens and fit time = fixed + per_token x B*T")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", default="embed", choices=["embed", "generate"],
                    help="embed: MiniLM /embed (default); generate: SmolLM2 /generate, continuous batching")
    ap.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"],
                    help="the servers' HTTP parser (transferlm serve --http; default: auto)")
    ap.add_argument("--new-tokens", type=int, default=32, help="--task generate: tokens per request (default: 32)")
    args = ap.parse_args()
    if args.task == "generate":
        return main_generate(args)
    texts = sentences(2000, args.seed)
    from transferlm.tokenization.io import load_tokenizer

    lens = sorted(len(load_tokenizer(assets.path("minilm")).encode(t).ids) for t in texts)
    print(f"{len(texts)} BBC sentences, tokens: min {lens[0]}, median {lens[len(lens) // 2]}, max {lens[-1]}; "
          f"{args.clients} clients x {args.seconds:.0f} s per mode; server --threads {args.threads} --http {args.http}")
    cost = calibrate(args.threads) if args.calibrate else None
    results = {}
    for mode in args.modes.split(","):
        if mode == "on:auto":
            if cost is None:
                raise SystemExit("--modes on:auto needs --calibrate")
            mode = f"on:{cost:.0f}"
        with served(mode, args.threads, http=args.http) as url:
            with httpx.Client(base_url=url, timeout=60) as c:  # warm up: first passes allocate
                for t in texts[:16]:
                    c.post("/embed", json={"inputs": t}).raise_for_status()
            res = asyncio.run(load(url, texts, args.clients, args.seconds, args.seed))
            with httpx.Client(base_url=url, timeout=10) as c:
                res["healthy_after"] = c.get("/health").status_code == 200
        results[mode] = res
        print(f"batching {mode:6s}: {res['rps']:7.1f} req/s  p50 {res['p50_ms']:7.1f} ms  p99 {res['p99_ms']:7.1f} ms  "
              f"{res['requests']} ok, {res['failed']} failed; mean {res['mean_batch']:.1f} texts/pass; "
              f"{res['bad_sent']} bad requests sent, {len(res['bad_wrong'])} not refused as expected")
        for f in res["failures"] + res["bad_wrong"]:
            print("   ", f)
    summary = {"clients": args.clients, "seconds": args.seconds, "threads": args.threads,
               **{f"{k}_{mode}": (round(v, 2) if isinstance(v, float) else v) for mode, r in results.items()
                  for k, v in r.items() if k in ("rps", "p50_ms", "p99_ms", "requests", "failed", "mean_batch",
                                                 "bad_sent")}}
    ok = all(r["failed"] == 0 and not r["bad_wrong"] and r["healthy_after"] for r in results.values())
    if "on" in results and "off" in results:
        ratio = results["on"]["rps"] / results["off"]["rps"]
        summary["speedup"] = round(ratio, 2)
        goal = ratio >= 3 and results["on"]["p99_ms"] < 1000
        print(f"dynamic batching: {ratio:.2f}x the requests/s of one request at a time; p99 "
              f"{results['on']['p99_ms']:.0f} ms (goal: >= 3x, p99 < 1000 ms: {'met' if goal else 'NOT met'})")
        summary["goal_met"] = goal
    summary["all_clean"] = ok
    print(json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
