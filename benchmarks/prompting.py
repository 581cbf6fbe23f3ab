"""Few-shot prompting benchmark (issue #14): BBC News with SmolLM2-135M, raw / calibrated / PMI, and speed.

    python benchmarks/prompting.py [--shots 0,1,2] [--max-text-tokens 128] [--test-limit N] [--speed-examples 8]
                                   [--threads 2] [--results FILE.jsonl]

Data: the seeded BBC split of benchmarks/finetune.py (the 2,225 articles shuffled with
random.Random(0); the first 445 are the held-out test set, the other 1,780 the pool). A k-shot prompt
holds k demonstrations PER CLASS: the first k articles of each class in the pool's shuffled order (the
articles the fine-tuning learning curve's "k per class", draw 0, trains on), shuffled together with
random.Random(0) (`select_balanced`). Every article (demonstrations and test) is clipped to its first
--max-text-tokens tokens; the test set is the first --test-limit held-out articles (all 445 by default).

Prompt (PromptTemplate defaults): "Classify each article as one of: business, entertainment, politics,
sport, tech." then per demonstration "Article: <text>\\nTopic: <label>\\n\\n", then "Article:
<test text>\\nTopic:"; the verbalizers are the labels, each one token after a space. For each k, every
test article is scored once and read three ways: raw (argmax log P(label | prompt)), contextual
calibration (Zhao et al. 2021; content-free "N/A", "[MASK]", "") and domain-conditional PMI (Holtzman et
al. 2021; domain premise "Topic:" after the same demonstrations).

Nearest neighbours (--nearest-limit N, k > 0): the first N test articles again, each with its own k x 5
demonstrations, the pool articles nearest to it in MiniLM space (mean pooled, unit vectors, 256 tokens),
the nearest last; raw / contextual / PMI as above, the constants computed per article. Each k's nearest
pass stops after --nearest-seconds (default 240) and reports on the articles it scored (the first ones).

Speed (per test article, the first --speed-examples articles, one method after the other on each article
so that both see the same machine load): ours = the fixed instruction + demonstrations run once (in fit,
not counted) and each article's own tokens added to that cache, all five labels read from that one pass;
ours-no-demo-cache = the whole prompt run once per article, labels from that pass; transformers = the
same weights (the GGUF through transformers) run once per label over prompt + label, the issue's
reference. The scores of the three are checked equal on the way.

Results: one JSON line per (k, calibration) and per speed measurement, to stdout and --results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from transferlm.cli.generate import load  # noqa: E402
from transferlm.data import assets  # noqa: E402
from transferlm.prompting import calibration  # noqa: E402
from transferlm.prompting.fewshot import PromptClassifier, PromptOptions  # noqa: E402
from transferlm.prompting.scoring import score_labels, score_labels_full  # noqa: E402
from transferlm.training import metrics  # noqa: E402

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.0f}s] {msg}", file=sys.stderr, flush=True)


def bbc_split():
    """benchmarks/finetune.py's split, repeated here so this script does not import the fine-tuning stack."""
    import random

    data = assets.bbc_news()
    order = list(range(len(data)))
    random.Random(0).shuffle(order)
    n_test = len(data) // 5
    return [data[i] for i in order[n_test:]], [data[i] for i in order[:n_test]]


def emit(rec: dict, results: Path | None) -> None:
    line = json.dumps(rec)
    print(line, flush=True)
    if results is not None:
        with open(results, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", default="0,1,2", help="demonstrations per class, comma-separated")
    ap.add_argument("--max-text-tokens", type=int, default=128)
    ap.add_argument("--test-limit", type=int, default=None, help="the first N held-out articles (default: all 445)")
    ap.add_argument("--speed-examples", type=int, default=8, help="articles timed against transformers (0: none)")
    ap.add_argument("--nearest-limit", type=int, default=0,
                    help="also score the first N test articles with MiniLM nearest-neighbour demonstrations (k > 0)")
    ap.add_argument("--nearest-seconds", type=float, default=240.0,
                    help="stop the nearest-neighbour pass of each k after this many seconds (reported: articles done)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: on a shared, "
                    "oversubscribed CPU two threads make small matmuls far slower)")
    ap.add_argument("--results", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = Path(args.results) if args.results else None

    pool, test = bbc_split()
    if args.test_limit:
        test = test[:args.test_limit]
    labels = sorted({lab for _, lab in pool})
    model, tok = load("smollm2")
    ref = None
    if args.speed_examples:
        from transformers import AutoModelForCausalLM

        g = assets.path("smollm2")
        ref = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32).eval()
    gold = [lab for _, lab in test]
    common = {"model": "SmolLM2-135M-Instruct (GGUF Q4_1, dequantised)", "max_text_tokens": args.max_text_tokens,
              "test_articles": len(test), "threads": args.threads}

    nn = None
    for k in [int(x) for x in args.shots.split(",")]:
        with torch.inference_mode():
            t = time.perf_counter()
            clf = PromptClassifier(model, tok, labels, options=PromptOptions(
                shots=k, select="balanced", max_text_tokens=args.max_text_tokens)).fit(pool)
            p_cf, domain = clf.fixed_prompt_constants()
            fit_s = time.perf_counter() - t
            log(f"k={k}: shared prompt {len(clf.fixed.ids)} tokens, fit {fit_s:.1f}s; p_cf "
                f"{[round(x, 3) for x in p_cf.tolist()]}")
            raw = []
            t = time.perf_counter()
            for i, (text, _) in enumerate(test):
                raw.append(clf.fixed_prompt_scores(text, f"held-out article {i}"))
                if (i + 1) % 50 == 0:
                    log(f"k={k}: {i + 1}/{len(test)} articles, {(time.perf_counter() - t) / (i + 1):.3f} s each")
            score_s = (time.perf_counter() - t) / len(test)
            raw_t = torch.stack(raw)  # (N, L)
            reads = {"raw": raw_t, "contextual": calibration.contextual_calibrate(raw_t, p_cf),
                     "pmi": calibration.pmi(raw_t, domain)}
            for name, s in reads.items():
                pred = [labels[int(j)] for j in s.argmax(-1)]
                emit({"part": "accuracy", "shots_per_class": k, "calibration": name,
                      "accuracy": round(metrics.accuracy(gold, pred), 4),
                      "macro_f1": round(metrics.f1(gold, pred, "macro"), 4),
                      "predicted_counts": {lab: pred.count(lab) for lab in labels},
                      "shared_prompt_tokens": len(clf.fixed.ids), "seconds_per_article": round(score_s, 4),
                      "fit_seconds": round(fit_s, 2), **common}, results)

            if k > 0 and args.nearest_limit:
                t = time.perf_counter()
                if nn is None:
                    nn = PromptClassifier(model, tok, labels, options=PromptOptions(
                        shots=k, select="nearest", max_text_tokens=args.max_text_tokens))
                nn.options.shots = k
                nn.fit(pool)  # the pool's MiniLM vectors are computed once, for the first k
                fit_nn = time.perf_counter() - t
                t = time.perf_counter()
                got = []
                for text, _ in test[:args.nearest_limit]:  # until --nearest-seconds are spent
                    got += nn.scores_and_constants([text])
                    if time.perf_counter() - t > args.nearest_seconds:
                        break
                sub = test[:len(got)]
                per = (time.perf_counter() - t) / len(sub)
                raw_n = torch.stack([r for r, _, _ in got])
                reads = {"raw": raw_n,
                         "contextual": torch.stack([calibration.contextual_calibrate(r, c) for r, c, _ in got]),
                         "pmi": torch.stack([calibration.pmi(r, d) for r, _, d in got])}
                g = [lab for _, lab in sub]
                for name, s in reads.items():
                    pred = [labels[int(j)] for j in s.argmax(-1)]
                    emit({"part": "accuracy_nearest", "shots_per_class": k, "calibration": name,
                          "accuracy": round(metrics.accuracy(g, pred), 4),
                          "macro_f1": round(metrics.f1(g, pred, "macro"), 4),
                          "predicted_counts": {lab: pred.count(lab) for lab in labels},
                          "seconds_per_article_with_constants": round(per, 4), "fit_seconds": round(fit_nn, 2),
                          **common, "test_articles": len(sub)}, results)
                log(f"k={k}: nearest on {len(sub)} articles, {per:.2f} s each")

            if ref is None:
                continue
            warm = clf.render(clf.demonstrations(), clf.clip(test[0][0]))
            score_labels_full(ref, warm, clf.label_ids)  # first calls allocate; keep them out of the timing
            score_labels(model, warm, clf.label_ids)
            times = {"ours": [], "ours_no_demo_cache": [], "transformers_per_label": []}
            tokens = []
            for i, (text, _) in enumerate(test[:args.speed_examples]):
                t = time.perf_counter()
                a = clf.fixed_prompt_scores(text)
                times["ours"].append(time.perf_counter() - t)
                ids = clf.render(clf.demonstrations(), clf.clip(text))
                tokens.append(len(ids))
                t = time.perf_counter()
                b = score_labels(model, ids, clf.label_ids)
                times["ours_no_demo_cache"].append(time.perf_counter() - t)
                t = time.perf_counter()
                c = score_labels_full(ref, ids, clf.label_ids)
                times["transformers_per_label"].append(time.perf_counter() - t)
                assert torch.allclose(a, c, atol=5e-3) and torch.allclose(b, c, atol=5e-3), (a, b, c)
            mean = {n: sum(v) / len(v) for n, v in times.items()}
            emit({"part": "speed", "shots_per_class": k, "articles": len(tokens),
                  "mean_prompt_tokens": round(sum(tokens) / len(tokens), 1),
                  "seconds_per_article": {n: round(v, 4) for n, v in mean.items()},
                  "seconds_per_scored_label_transformers": round(mean["transformers_per_label"] / len(labels), 4),
                  "speedup_vs_transformers": round(mean["transformers_per_label"] / mean["ours"], 2),
                  "speedup_no_demo_cache_vs_transformers": round(
                      mean["transformers_per_label"] / mean["ours_no_demo_cache"], 2), **common}, results)
    log("done")


if __name__ == "__main__":
    main()
