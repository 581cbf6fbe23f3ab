"""GPT-1 fine-tuning of SmolLM2-135M on BBC News (issue #14), beside MiniLM, on the same split.

    python benchmarks/decoder_finetune.py --size 10 --draws 0,1,2 --lambdas 0,0.5 [--minilm]
                                          [--max-length 128] [--steps 40] [--batch-size 8]
                                          [--results runs/decoder_bbc.jsonl] [--table]

Split and label samples: benchmarks/finetune.py's (`bbc_split`, `draw_train_dev`): the 2,225
articles shuffled with random.Random(0), the first 445 held out for testing, the other 1,780 the
training pool; "k per class" takes the first k of each class in draw d's order of the pool.
--size all trains on the first --pool-limit articles of the pool (all 1,780 when 0).

Each run fine-tunes one model on the training sample with a fixed budget (--steps updates of
--batch-size, linear decay after 10% warmup, no dev set: the budget alone, so runs of different
lambdas see the same data in the same order) and scores the 445 held-out articles:
- SmolLM2-135M-Instruct (the GGUF asset, dequantised to fp32) as `TextClassifier.new("smollm2",
  aux_lm_weight=lambda)`: GPT-1 fine-tuning, <|im_start|> text <|im_end|>, the last token's state
  into a bias-free linear head; lambda 0 (task loss only) and 0.5 (GPT-1's L2 + 0.5 L1);
- MiniLM (--minilm): `TextClassifier.new("minilm")` with its defaults ([CLS] pooler), the same
  max length, budget, batch and lr 1e-4 (its CLI default).
Every result is one JSON line appended to --results, so a measurement split over several locked
runs (each under ~15 minutes on 2 shared cores) is one table: --table prints it (mean over the
draws of each (model, lambda, size)).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from finetune import bbc_split, draw_train_dev  # noqa: E402  (the one BBC split and its draws)
from transferlm.data import assets  # noqa: E402
from transferlm.pipelines import TextClassifier  # noqa: E402

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.0f}s] {msg}", flush=True)


_SMOL: tuple | None = None


def smollm2():
    """(Decoder, tokenizer) of the asset, read once (the GGUF dequantisation takes ~20 s)."""
    global _SMOL
    if _SMOL is None:
        from transferlm.pipelines.base import resolve_model

        _SMOL = resolve_model("smollm2")
    return _SMOL


def run_one(model: str, lam: float | None, train, test, labels, args) -> dict:
    t = time.perf_counter()
    if model == "smollm2":
        dec, tok = smollm2()
        clf = TextClassifier.new(copy.deepcopy(dec), labels=labels, tokenizer=tok, seed=0,
                                 max_length=args.max_length, aux_lm_weight=lam)
        lr = args.lr
    else:
        clf = TextClassifier.new(assets.path("minilm"), labels=labels, seed=0, max_length=args.max_length)
        lr = 1e-4
    hist = clf.fit([x for x, _ in train], [y for _, y in train], max_steps=args.steps,
                   batch_size=args.batch_size, lr=lr, progress=False, seed=0)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    m = clf.evaluate([x for x, _ in test], [y for _, y in test])
    last = hist[-1]
    return {"model": model, "lambda": lam, "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - t, 1),
            "train_loss": last.get("train_loss"), "train_task_loss": last.get("train_task_loss"),
            "train_lm_loss": last.get("train_lm_loss"), "steps": last["step"]}


def table(path: Path) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    groups: dict[tuple, list] = defaultdict(list)
    for r in rows:
        groups[(r["size"], r["model"], r["lambda"], r["max_length"], r["steps"], r["n_train"])].append(r)
    print("| per class | model | lambda | max len | updates x batch | n train | draws | accuracy (mean) | "
          "per draw | macro F1 (mean) | train s / run |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (size, model, lam, ml, steps, n), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        rs = sorted(rs, key=lambda r: r["draw"])
        acc = sum(r["accuracy"] for r in rs) / len(rs)
        f1 = sum(r["macro_f1"] for r in rs) / len(rs)
        per = " / ".join(f"{r['accuracy']:.4f}" for r in rs)
        secs = sum(r["train_s"] for r in rs) / len(rs)
        lam_s = "-" if lam is None else f"{lam:g}"
        print(f"| {size} | {model} | {lam_s} | {ml} | {steps} x {rs[0]['batch_size']} | {n} | "
              f"{','.join(str(r['draw']) for r in rs)} | **{acc:.4f}** | {per} | {f1:.4f} | {secs:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="10", help="labels per class, or 'all' (the pool, see --pool-limit)")
    ap.add_argument("--draws", default="0", help="comma-separated label-sample draws (benchmarks/finetune.py)")
    ap.add_argument("--lambdas", default="0,0.5", help="SmolLM2 aux_lm_weight values; '' = no SmolLM2 run")
    ap.add_argument("--minilm", action="store_true", help="also MiniLM with the same budget")
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16, help="updates per run")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4, help="SmolLM2 peak lr (MiniLM's default; GPT-1 sec. 4.1 used 6.25e-5)")
    ap.add_argument("--pool-limit", type=int, default=0, help="--size all: the first N pool articles (0 = all)")
    ap.add_argument("--test-limit", type=int, default=0, help="score the first N held-out articles (0 = all 445)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", default="runs/decoder_bbc.jsonl")
    ap.add_argument("--table", action="store_true", help="only print the table of --results")
    args = ap.parse_args()
    out = Path(args.results)
    if args.table:
        table(out)
        return
    torch.set_num_threads(args.threads)
    pool, test = bbc_split()
    if args.test_limit:
        test = test[:args.test_limit]
    labels = sorted({y for _, y in pool})
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = [("minilm", None)] if args.minilm else []  # first: the cheap one
    runs += [("smollm2", float(x)) for x in args.lambdas.split(",") if x.strip()]
    for d in [int(x) for x in args.draws.split(",")]:
        if args.size == "all":
            train = pool[:args.pool_limit] if args.pool_limit else pool
        else:
            train, _ = draw_train_dev(pool, int(args.size), d)
        for model, lam in runs:
            log(f"{model} lambda={lam} size={args.size} draw={d}: {len(train)} train, {len(test)} test")
            r = run_one(model, lam, train, test, labels, args)
            r.update({"size": args.size, "draw": d, "n_train": len(train), "n_test": len(test),
                      "max_length": args.max_length, "batch_size": args.batch_size,
                      "lr": args.lr if model == "smollm2" else 1e-4, "threads": args.threads,
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
            log(json.dumps(r))
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps(r) + "\n")
    table(out)


if __name__ == "__main__":
    main()
