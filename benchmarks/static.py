"""Static embeddings against gensim 4.4, measured in the same run.

    python benchmarks/static.py word2vec [--seeds 1,2,3] [--epochs 5] [--workers 2] [--cbow] [--quick]
    python benchmarks/static.py glove-train [--epochs 10]   # our GloVe on the same corpus (no reference here)
    python benchmarks/static.py glove-asset       # the GloVe 6B 50d asset through both evaluators
    python benchmarks/static.py classify [--draws 3]   # BBC 10 labels/class: GloVe frozen / fine-tuned / scratch

word2vec: the same sentences (PTB train lines + every BBC News article's paragraphs, tokenized with
`embeddings.static.tokenize` and lower-cased: about 1.8M words) to gensim's Word2Vec and ours with
the same settings (dim 100, window 5, negative 5, sample 1e-3, min_count 5, alpha 0.025, the same
number of worker threads and epochs), gensim then ours for each seed, so both see the same machine
load. Prints per run: wall-clock seconds of the whole `train` call (vocabulary included) and raw
words/s (corpus words x epochs / seconds), WordSim-353 Spearman and Google analogy accuracy
(3CosAdd, restrict_vocab 300000: our evaluators, tested equal to gensim's); then the means, the
standard deviations over seeds and the throughput ratio ours / gensim. One JSON line per run and one
summary JSON line last.

glove-asset: WordSim-353 / SimLex-999 Spearman and Pearson and the Google analogy accuracy of the
400k GloVe vectors by gensim's KeyedVectors evaluators and by ours (and 3CosMul by ours), and
whether they are equal.

classify: the demo's seeded BBC split (`demo.data.DemoData`, 445 test articles), 10 labelled articles
per topic, `draws` label samples; a bag-of-vectors classifier ([mean; max] pooling + linear,
`train_bag_classifier` defaults) over GloVe 6B 50d frozen, GloVe fine-tuned, and 50-d vectors from
scratch (the training articles' words); mean test accuracy over the draws. The GloVe table is cut to
the rows the BBC articles' words reach (`only_words`), which gives the same look-ups as all 400k rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from transferlm.data import assets
from transferlm.embeddings import evaluate as ev
from transferlm.embeddings.static import (
    StaticEmbedding, Vectors, load_glove_asset, predict_bag, tokenize, train_bag_classifier,
)
from transferlm.embeddings.word2vec import Word2Vec, Word2VecConfig


def corpus(quick: bool) -> list[list[str]]:
    sents = [ln.split() for ln in assets.ptb_text("train").splitlines() if ln.strip()]
    for text, _ in assets.bbc_news():
        for para in text.splitlines():
            toks = [t.lower() for t in tokenize(para)]
            if toks:
                sents.append(toks)
    return sents[::10] if quick else sents


def scores(v: Vectors) -> dict:
    ws = ev.evaluate_word_pairs(v, ev.gensim_test_data("wordsim353.tsv"))
    an = ev.evaluate_analogies(v)
    return {"wordsim353": ws.spearman, "ws_oov_pct": ws.oov_ratio, "google_3cosadd": an.accuracy,
            "google_scored": an.total, "google_oov_pct": an.oov_ratio}


def run_word2vec(args: argparse.Namespace) -> None:
    from gensim.models import Word2Vec as GensimWord2Vec

    torch.set_num_threads(args.workers)
    sents = corpus(args.quick)
    n_words = sum(len(s) for s in sents)
    print(f"corpus: {len(sents)} sentences, {n_words} words; sg={not args.cbow} dim=100 window=5 "
          f"negative=5 sample=1e-3 min_count=5 epochs={args.epochs} workers={args.workers}", file=sys.stderr)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t = time.perf_counter()
        g = GensimWord2Vec(sents, vector_size=100, window=5, negative=5, sample=1e-3, min_count=5,
                           sg=0 if args.cbow else 1, epochs=args.epochs, workers=args.workers, seed=seed)
        gt = time.perf_counter() - t
        gv = Vectors(list(g.wv.index_to_key), g.wv.vectors.copy())
        cfg = Word2VecConfig(sg=not args.cbow, dim=100, window=5, negative=5, sample=1e-3, min_count=5,
                             epochs=args.epochs, workers=args.workers, seed=seed)
        t = time.perf_counter()
        ov = Word2Vec(cfg).train(sents).vectors()
        ot = time.perf_counter() - t
        for name, v, sec in (("gensim", gv, gt), ("ours", ov, ot)):
            row = {"impl": name, "seed": seed, "seconds": round(sec, 2),
                   "words_per_s": round(n_words * args.epochs / sec), "vocab": len(v), **scores(v)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary: dict = {"corpus_words": n_words, "epochs": args.epochs, "workers": args.workers,
                     "sg": not args.cbow}
    for name in ("gensim", "ours"):
        rs = [r for r in rows if r["impl"] == name]
        for k in ("wordsim353", "google_3cosadd", "words_per_s"):
            vals = [r[k] for r in rs]
            summary[f"{name}_{k}_mean"] = statistics.mean(vals)
            summary[f"{name}_{k}_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
    summary["throughput_ratio"] = summary["ours_words_per_s_mean"] / summary["gensim_words_per_s_mean"]
    print(json.dumps(summary))


def run_glove_train(args: argparse.Namespace) -> None:
    from transferlm.embeddings.glove import GloVe, GloVeConfig

    sents = corpus(args.quick)
    cfg = GloVeConfig(dim=100, window=10, epochs=args.epochs, min_count=5, batch_pairs=4096)
    t = time.perf_counter()
    m = GloVe(cfg).train(sents)
    sec = time.perf_counter() - t
    print(json.dumps({"impl": "ours_glove", "seconds": round(sec, 1), "entries": m.entries,
                      "loss_first_last": [m.losses[0], m.losses[-1]], "epochs": args.epochs,
                      **scores(m.vectors())}))


def run_glove_asset(args: argparse.Namespace) -> None:
    from gensim.models import KeyedVectors

    v = load_glove_asset()
    kv = KeyedVectors(v.dim)
    kv.add_vectors(v.words, v.matrix)
    out: dict = {}
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        p, s, oov = kv.evaluate_word_pairs(str(ev.gensim_test_data(file)))
        r = ev.evaluate_word_pairs(v, ev.gensim_test_data(file))
        out[name] = {"gensim_spearman": s.statistic, "ours_spearman": r.spearman,
                     "gensim_pearson": p.statistic, "ours_pearson": r.pearson,
                     "gensim_oov_pct": oov, "ours_oov_pct": r.oov_ratio}
        print(json.dumps({name: out[name]}), flush=True)
    t = time.perf_counter()
    score, sections = kv.evaluate_word_analogies(str(ev.gensim_test_data("questions-words.txt")))
    gt = time.perf_counter() - t
    print(json.dumps({"gensim_google_3cosadd": score, "seconds": round(gt, 1)}), flush=True)
    t = time.perf_counter()
    r = ev.evaluate_analogies(v)
    ot = time.perf_counter() - t
    print(json.dumps({"ours_google_3cosadd": r.accuracy, "seconds": round(ot, 1)}), flush=True)
    same_sections = all(r.sections[s["section"]] == (len(s["correct"]), len(s["correct"]) + len(s["incorrect"]))
                        for s in sections[:-1])
    mul = ev.evaluate_analogies(v, method="3cosmul")
    out["google"] = {"gensim_3cosadd": score, "ours_3cosadd": r.accuracy, "sections_equal": same_sections,
                     "ours_3cosmul": mul.accuracy, "scored": r.total, "oov_pct": r.oov_ratio,
                     "gensim_seconds": round(gt, 1), "ours_seconds": round(ot, 1)}
    print(json.dumps(out))


def run_classify(args: argparse.Namespace) -> None:
    from transferlm.demo.data import DemoData

    torch.set_num_threads(2)
    data = DemoData.load(per_class=10, seed=0, samples=args.draws)
    glove = load_glove_asset()
    test_texts = [t for t, _ in data.test]
    test_labels = [lab for _, lab in data.test]
    results: dict[str, list[float]] = {"glove_frozen": [], "glove_finetuned": [], "scratch": []}
    # GloVe rows kept: those the train and test articles' words reach (no labels involved); a word
    # seen only in test articles keeps its GloVe vector in every mode, as with the full table
    vocab = sorted({w for t, _ in data.train + data.test for w in tokenize(t)})
    for d, (few, _dev) in enumerate(data.samples):
        texts = [t for t, _ in few]
        labels = [lab for _, lab in few]
        train_words = [w.lower() for t in texts for w in tokenize(t)]
        for name in results:
            t = time.perf_counter()
            if name == "scratch":
                emb = StaticEmbedding.scratch(train_words, dim=50, seed=d)
            else:
                emb = StaticEmbedding.from_vectors(glove, mode="frozen" if name == "glove_frozen" else "finetune",
                                                   extra_words=train_words, seed=d, only_words=vocab)
            model, names = train_bag_classifier(texts, labels, emb)
            pred = predict_bag(model, names, test_texts)
            acc = float(np.mean([p == y for p, y in zip(pred, test_labels)]))
            results[name].append(acc)
            print(json.dumps({"draw": d, "model": name, "accuracy": round(acc, 4),
                              "seconds": round(time.perf_counter() - t, 1)}), flush=True)
    print(json.dumps({"test_articles": len(test_texts), "per_class": 10, "draws": args.draws,
                      **{k: statistics.mean(v) for k, v in results.items()}}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["word2vec", "glove-train", "glove-asset", "classify"])
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cbow", action="store_true")
    p.add_argument("--quick", action="store_true", help="a tenth of the corpus")
    p.add_argument("--draws", type=int, default=3)
    args = p.parse_args()
    {"word2vec": run_word2vec, "glove-train": run_glove_train, "glove-asset": run_glove_asset,
     "classify": run_classify}[args.part](args)


if __name__ == "__main__":
    main()
