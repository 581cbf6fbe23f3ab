"""`transferlm embeddings train|evaluate|neighbours`: static word vectors (word2vec, GloVe).

    transferlm embeddings train --algo word2vec --sg --dim 100 FILES... --out DIR   # DIR/vectors.txt
    transferlm embeddings evaluate --vectors DIR/vectors.txt      # or --vectors glove (the asset)
    transferlm embeddings neighbours --vectors glove king queen   # nearest words, JSON lines

Training reads one sentence per line, tokens split on whitespace (gensim's LineSentence; --lowercase
folds case) and writes DIR/vectors.txt in the word2vec text format (and DIR/config.json with the
settings, the corpus size and the speed). `evaluate` prints WordSim-353 and SimLex-999 Spearman and
the Google analogy accuracy (3CosAdd, 3CosMul) with gensim's conventions; its last stdout line is
one JSON object. (`transferlm embed` is the other command: contextual vectors from an encoder.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from ..fileio import atomic_write_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embeddings", help="static word vectors: train word2vec / GloVe, evaluate, neighbours",
                       description=__doc__.splitlines()[0])
    s = p.add_subparsers(dest="embeddings_cmd", required=True)

    t = s.add_parser("train", help="train word2vec (skip-gram / CBOW) or GloVe vectors on text files")
    t.add_argument("files", nargs="+", type=Path, help="UTF-8 text, one sentence per line")
    t.add_argument("--out", type=Path, required=True, help="output folder (vectors.txt, config.json)")
    t.add_argument("--algo", choices=["word2vec", "glove"], default="word2vec")
    arch = t.add_mutually_exclusive_group()
    arch.add_argument("--sg", dest="sg", action="store_true", default=True, help="skip-gram (default)")
    arch.add_argument("--cbow", dest="sg", action="store_false", help="CBOW")
    t.add_argument("--dim", type=int, default=100, help="vector size (default: 100)")
    t.add_argument("--window", type=int, default=None, help="context window (default: word2vec 5, GloVe 10)")
    t.add_argument("--epochs", type=int, default=None, help="passes (default: word2vec 5, GloVe 25)")
    t.add_argument("--min-count", type=int, default=5, help="drop rarer words (default: 5)")
    t.add_argument("--negative", type=int, default=5, help="word2vec: noise words per pair (default: 5)")
    t.add_argument("--sample", type=float, default=1e-3, help="word2vec: subsampling threshold (default: 1e-3)")
    t.add_argument("--alpha", type=float, default=None,
                   help="start learning rate (default: word2vec 0.025, GloVe 0.05)")
    t.add_argument("--workers", type=int, default=2, help="word2vec: Hogwild threads (default: 2)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--lowercase", action="store_true", help="lower-case the text first")
    t.add_argument("--format", choices=["word2vec", "word2vec-binary", "glove"], default="word2vec",
                   help="file format of DIR/vectors.txt (default: word2vec text)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    e = s.add_parser("evaluate", help="word similarity (Spearman) and analogy accuracy; last line JSON")
    e.add_argument("--vectors", required=True, help="a word2vec text/binary or GloVe file, or the asset 'glove'")
    e.add_argument("--format", choices=["word2vec", "word2vec-binary", "glove"], default=None,
                   help="the file's format (default: detected)")
    e.add_argument("--restrict-vocab", type=int, default=300_000,
                   help="only the first N words count as known (gensim's default: 300000)")
    e.add_argument("--no-analogies", action="store_true", help="skip the Google analogy set (the slow part)")
    e.set_defaults(func=_evaluate)

    n = s.add_parser("neighbours", help="the nearest words of each query word, JSON lines")
    n.add_argument("--vectors", required=True, help="a vectors file or the asset 'glove'")
    n.add_argument("words", nargs="+")
    n.add_argument("--topn", type=int, default=10)
    n.set_defaults(func=_neighbours)


def _train(args: argparse.Namespace) -> int:
    from ..embeddings.glove import GloVe, GloVeConfig
    from ..embeddings.word2vec import Word2Vec, Word2VecConfig, read_sentences

    sentences = read_sentences(args.files, lowercase=args.lowercase)
    source = ", ".join(str(f) for f in args.files)
    n_words = sum(len(s) for s in sentences)
    if args.algo == "word2vec":
        cfg = Word2VecConfig(sg=args.sg, dim=args.dim, window=args.window or 5, negative=args.negative,
                             sample=args.sample, min_count=args.min_count, alpha=args.alpha or 0.025,
                             epochs=args.epochs or 5, workers=args.workers, seed=args.seed)
        model = Word2Vec(cfg)
        unit, total = "word", n_words * cfg.epochs  # raw words, as gensim counts them
    else:
        cfg = GloVeConfig(dim=args.dim, window=args.window or 10, min_count=args.min_count,
                          lr=args.alpha or 0.05, epochs=args.epochs or 25, seed=args.seed)
        model = GloVe(cfg)
        unit, total = "entry", None  # nonzero co-occurrence entries: known once counted
    bar = tqdm(total=total, unit=unit, unit_scale=True, dynamic_ncols=True, disable=args.no_progress,
               desc=f"{args.algo}{'' if args.algo == 'glove' else (' sg' if cfg.sg else ' cbow')}")
    start = time.perf_counter()
    with bar:
        if args.algo == "glove":
            def set_total(n: int) -> None:
                bar.total = n
                bar.refresh()
            model.train(sentences, source=source, progress=bar.update, on_total=set_total)
        else:
            model.train(sentences, source=source, progress=bar.update)
    seconds = time.perf_counter() - start
    vectors = model.vectors()
    args.out.mkdir(parents=True, exist_ok=True)
    vectors.save(args.out / "vectors.txt", args.format)
    info = {"algo": args.algo, "config": dataclasses.asdict(cfg), "files": [str(f) for f in args.files],
            "corpus_words": n_words, "vocab": len(vectors), "seconds": round(seconds, 2),
            "words_per_second": round(n_words * cfg.epochs / max(seconds, 1e-9)), "format": args.format}
    atomic_write_text(args.out / "config.json", json.dumps(info, indent=2) + "\n")
    print(json.dumps({"vectors": str(args.out / "vectors.txt"), "vocab": len(vectors), "dim": vectors.dim,
                      "seconds": info["seconds"], "words_per_second": info["words_per_second"]}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..embeddings.evaluate import evaluate_all
    from ..embeddings.vectors import load

    v = load(args.vectors, format=args.format)
    print(f"{args.vectors}: {len(v)} words x {v.dim}", file=sys.stderr)
    print(json.dumps(evaluate_all(v, restrict_vocab=args.restrict_vocab, analogies=not args.no_analogies)))
    return 0


def _neighbours(args: argparse.Namespace) -> int:
    from ..embeddings.evaluate import most_similar
    from ..embeddings.vectors import load

    v = load(args.vectors)
    for w in args.words:
        if w not in v:
            raise KeyError(f"{w!r} is not in {args.vectors}")
        print(json.dumps({"word": w, "neighbours": [[x, round(s, 4)] for x, s in most_similar(v, [w], topn=args.topn)]}))
    return 0
