"""Intrinsic evaluation of static vectors: nearest neighbours, analogies (3CosAdd, 3CosMul), word-pair
similarity (WordSim-353, SimLex-999: Spearman and Pearson) and the Google analogy set.

Each evaluator gives the same numbers as gensim 4.4's `KeyedVectors` on the same vectors, because it
follows the same conventions (tested against gensim):
- `restrict_vocab` (default 300,000): questions and pairs whose words are not all among the first
  `restrict_vocab` words are out of vocabulary: skipped and counted (`oov`), or, with
  `dummy4unknown`, scored as wrong (analogies) / similarity 0 (pairs);
- `case_insensitive` (default): the test words and the vocabulary are upper-cased; where several
  words share an upper-case form, the first (most frequent) one's vector is used;
- a question's answer is the best-scoring word among the top 5 that is not one of its three words
  (or another case form of them); 3CosAdd searches the first `restrict_vocab` words, 3CosMul (as
  gensim's `most_similar_cosmul`) every word;
- the arithmetic is gensim's: float32 unit vectors, a float64 mean, the cosine of each row computed
  as one float32 matrix-vector product, so ties break the same way.
Analogies are scored in batches (one matrix product for many questions picks candidates, then each
question's candidates are rescored exactly), which makes the full Google set fast.

3CosAdd: argmax_d cos(d, b) - cos(d, a) + cos(d, c) (Mikolov et al. 2013, "Linguistic regularities");
3CosMul: argmax_d cos'(d, b) cos'(d, c) / (cos'(d, a) + 1e-6), cos' = (1 + cos) / 2 (Levy & Goldberg
2014, eq. 4 and footnote 7).

What it does not: no set-based analogy methods (3CosAvg, LRCos), no embedding-space plots.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.linalg.blas import dnrm2, dscal

from .vectors import Vectors

METHODS = ("3cosadd", "3cosmul")


def gensim_test_data(name: str) -> Path:
    """A file of gensim's test data (questions-words.txt, wordsim353.tsv, simlex999.txt); gensim is
    found without importing it."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{name}: the evaluation sets ship with gensim (pip install gensim==4.4.0)")
    return Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name


def _norms(v: Vectors) -> np.ndarray:
    n = getattr(v, "_norms", None)
    if n is None or n.shape[0] != len(v):
        n = np.linalg.norm(v.matrix, axis=1)  # (V,) float32, gensim's fill_norms
        v._norms = n  # type: ignore[attr-defined]
    return n


def _unitvec64(vec: np.ndarray) -> np.ndarray:
    """gensim's matutils.unitvec: double-precision BLAS norm and scale, the input's dtype back."""
    n = dnrm2(vec)
    return dscal(1.0 / n, vec).astype(vec.dtype) if n > 0.0 else vec


def _mean_query(v: Vectors, pos: list[int], neg: list[int]) -> np.ndarray:
    """The unit mean of +-unit vectors (gensim's get_mean_vector, pre- and post-normalised)."""
    norms = _norms(v)
    weights = np.concatenate((np.ones(len(pos)), -1.0 * np.ones(len(neg))))  # float64, as gensim
    mean = np.zeros(v.dim, np.float32)
    total = 0
    for w, i in zip(weights, pos + neg):
        mean += w * (v.matrix[i] / norms[i])
        total += abs(w)
    mean = mean / total  # float64
    return _unitvec64(mean).astype(np.float32)


@dataclass
class _Query:
    pos: list[int]
    neg: list[int]


def _rank(v: Vectors, queries: list[_Query], method: str, restrict: int | None, topn: int,
          chunk: int = 64, margin: int = 16) -> list[list[tuple[int, float]]]:
    """For each query: the `topn` best rows (not the query's own rows) with their scores.

    One query: gensim's exact path (one float32 matrix-vector product over all rows). Several: a
    matrix product for the whole chunk picks each query's best `topn + 3 + margin` rows, which are
    then rescored one query at a time (a product over those rows only: the scores can differ from
    the full product's in the last bit of the float32, the answers do not, as tested)."""
    if method not in METHODS:
        raise ValueError(f"analogy method must be one of {', '.join(METHODS)}, not {method!r}")
    norms = _norms(v)
    R = len(v) if (method == "3cosmul" or not restrict) else min(restrict, len(v))
    M, N = v.matrix[:R], norms[:R]
    out: list[list[tuple[int, float]]] = []
    if len(queries) == 1:
        q = queries[0]
        rows = np.arange(R)
        exact = _exact_scores(v, q, M, N, method)
        return [_best(rows, exact, q, topn)]
    for s in range(0, len(queries), chunk):
        qs = queries[s: s + chunk]
        if method == "3cosadd":
            means = np.stack([_mean_query(v, q.pos, q.neg) for q in qs])  # (Q, D)
            approx = (means @ M.T) / N[None, :]  # (Q, R)
        else:
            flat = np.stack([v.matrix[i] / norms[i] for q in qs for i in q.pos + q.neg])  # (terms, D)
            cos = (1 + (flat @ M.T) / N[None, :]) / 2  # (terms, R)
            approx = np.empty((len(qs), R), np.float32)  # (Q, R)
            t = 0
            for j, q in enumerate(qs):
                p, n = len(q.pos), len(q.neg)
                approx[j] = np.prod(cos[t: t + p], axis=0) / (np.prod(cos[t + p: t + p + n], axis=0) + 0.000001)
                t += p + n
        k = min(R, topn + 3 + margin)
        cands = np.argpartition(-approx, k - 1, axis=1)[:, :k] if k < R else np.tile(np.arange(R), (len(qs), 1))
        for j, q in enumerate(qs):
            rows = np.sort(cands[j])
            exact = _exact_scores(v, q, v.matrix[rows], norms[rows], method)
            out.append(_best(rows, exact, q, topn))
    return out


def _best(rows: np.ndarray, scores: np.ndarray, q: _Query, topn: int) -> list[tuple[int, float]]:
    own = set(q.pos + q.neg)
    k = min(len(rows), topn + len(own))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(rows) else np.arange(len(rows))
    order = top[np.lexsort((rows[top], -scores[top]))]  # best first; ties: lower row first
    return [(int(rows[i]), float(scores[i])) for i in order if int(rows[i]) not in own][:topn]


def _exact_scores(v: Vectors, q: _Query, sub: np.ndarray, n: np.ndarray, method: str) -> np.ndarray:
    """Scores of the rows `sub` (norms `n`) with gensim's arithmetic (one float32 matrix-vector
    product per term)."""
    norms = _norms(v)
    if method == "3cosadd":
        return np.dot(sub, _mean_query(v, q.pos, q.neg)) / n
    pos = [(1 + np.dot(sub, v.matrix[i] / norms[i]) / n) / 2 for i in q.pos]
    neg = [(1 + np.dot(sub, v.matrix[i] / norms[i]) / n) / 2 for i in q.neg]
    return np.prod(pos, axis=0) / (np.prod(neg, axis=0) + 0.000001)


def _ids(v: Vectors, words: list[str]) -> list[int]:
    out = []
    for w in words:
        if w not in v.index:
            raise KeyError(f"word {w!r} is not in the vectors")
        out.append(v.index[w])
    return out


def most_similar(v: Vectors, positive: list[str], negative: list[str] | None = None, topn: int = 10,
                 restrict_vocab: int | None = None, method: str = "3cosadd") -> list[tuple[str, float]]:
    """The `topn` nearest words to sum(positive) - sum(negative) by cosine (3CosAdd; with one
    positive word: its nearest neighbours), or by 3CosMul; the query words themselves left out.
    Equal to gensim's most_similar / most_similar_cosmul."""
    q = _Query(_ids(v, positive), _ids(v, negative or []))
    if not q.pos and method == "3cosmul":
        raise ValueError("3CosMul needs at least one positive word")
    if not q.pos + q.neg:
        raise ValueError("cannot compute similarity with no input")
    return [(v.words[i], s) for i, s in _rank(v, [q], method, restrict_vocab, topn)[0]]


def nearest_neighbours(v: Vectors, word: str, topn: int = 10) -> list[tuple[str, float]]:
    return most_similar(v, [word], topn=topn)


def _ok_vocab(v: Vectors, restrict_vocab: int, case_insensitive: bool) -> dict[str, int]:
    ok = v.words[:restrict_vocab]
    if case_insensitive:  # reversed: the first (most frequent) case form wins
        return {w.upper(): v.index[w] for w in reversed(ok)}
    return {w: v.index[w] for w in reversed(ok)}


@dataclass
class AnalogyResult:
    accuracy: float  # correct / (correct + incorrect) over all sections
    correct: int
    total: int  # questions scored (with dummy4unknown: out-of-vocabulary ones count as wrong)
    oov: int  # questions with a word outside the first restrict_vocab words
    oov_ratio: float  # percent of all well-formed questions, as gensim
    sections: dict[str, tuple[int, int]]  # section -> (correct, scored)


def evaluate_analogies(v: Vectors, path: str | os.PathLike | None = None, restrict_vocab: int = 300_000,
                       case_insensitive: bool = True, dummy4unknown: bool = False,
                       method: str = "3cosadd") -> AnalogyResult:
    """Accuracy on an analogy file (": section" lines, then "a b c d" lines: a:b :: c:d); the
    Google set (Mikolov et al. 2013, 19,544 questions) by default. gensim's evaluate_word_analogies."""
    path = Path(path) if path is not None else gensim_test_data("questions-words.txt")
    ok = _ok_vocab(v, restrict_vocab, case_insensitive)
    sections: dict[str, list[int]] = {}
    section: str | None = None
    todo: list[tuple[str, _Query, set[str], str]] = []
    oov = n_questions = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.decode("utf-8")
            if line.startswith(": "):
                section = line.lstrip(": ").strip()
                sections.setdefault(section, [0, 0])
                continue
            if section is None:
                raise ValueError(f"{path}:{lineno}: expected a ': section' line before the first question")
            parts = line.split()
            if len(parts) != 4:
                continue  # gensim skips lines that are not four words
            a, b, c, d = (p.upper() for p in parts) if case_insensitive else parts
            n_questions += 1
            if a not in ok or b not in ok or c not in ok or d not in ok:
                oov += 1
                if dummy4unknown:
                    sections[section][1] += 1
                continue
            todo.append((section, _Query([ok[b], ok[c]], [ok[a]]), {a, b, c}, d))
    ranked = _rank(v, [t[1] for t in todo], method, restrict_vocab, topn=5)
    for (sec, _, ignore, expected), sims in zip(todo, ranked):
        predicted = None
        for row, _ in sims:
            predicted = v.words[row].upper() if case_insensitive else v.words[row]
            if predicted in ok and predicted not in ignore:
                break
        sections[sec][1] += 1
        if predicted == expected:
            sections[sec][0] += 1
    correct = sum(c for c, _ in sections.values())
    total = sum(t for _, t in sections.values())
    return AnalogyResult(correct / total if total else 0.0, correct, total, oov,
                         oov / n_questions * 100 if n_questions else 0.0,
                         {k: (c, t) for k, (c, t) in sections.items()})


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), np.float64)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, np.float64) - np.mean(x, dtype=np.float64)
    y = np.asarray(y, np.float64) - np.mean(y, dtype=np.float64)
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's r of the (tie-averaged) ranks."""
    return pearson(_rankdata(np.asarray(x)), _rankdata(np.asarray(y)))


@dataclass
class PairsResult:
    spearman: float
    pearson: float
    pairs: int  # pairs scored
    oov: int
    oov_ratio: float  # percent, as gensim


def evaluate_word_pairs(v: Vectors, path: str | os.PathLike, delimiter: str = "\t",
                        restrict_vocab: int = 300_000, case_insensitive: bool = True,
                        dummy4unknown: bool = False) -> PairsResult:
    """Spearman / Pearson correlation between cosine similarity and human scores on a file of
    "word1<delim>word2<delim>score" lines ('#' lines are comments; malformed lines are skipped).
    gensim's evaluate_word_pairs."""
    path = Path(path)
    ok = _ok_vocab(v, restrict_vocab, case_insensitive)
    gold: list[float] = []
    model: list[float] = []
    oov = 0
    units: dict[int, np.ndarray] = {}

    def unit(i: int) -> np.ndarray:
        if i not in units:
            units[i] = _unitvec64(v.matrix[i])
        return units[i]

    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line or line.startswith("#"):
                continue
            parts = line.split(delimiter)
            if len(parts) != 3:
                continue
            a, b, s = (p.upper() for p in parts) if case_insensitive else parts
            try:
                sim = float(s)
            except ValueError:
                continue
            if a not in ok or b not in ok:
                oov += 1
                if dummy4unknown:
                    model.append(0.0)
                    gold.append(sim)
                continue
            gold.append(sim)
            model.append(float(np.dot(unit(ok[a]), unit(ok[b]))))  # float32 dot, as gensim
    if not gold:
        raise ValueError(f"{path}: no similarity judgements with both words in the vectors")
    ratio = oov / len(gold) * 100 if dummy4unknown else oov / (len(gold) + oov) * 100
    g, m = np.array(gold), np.array(model)
    return PairsResult(spearman(g, m), pearson(g, m), len(gold), oov, ratio)


def evaluate_all(v: Vectors, restrict_vocab: int = 300_000, analogies: bool = True) -> dict:
    """WordSim-353 and SimLex-999 (Spearman, Pearson, OOV %) and the Google analogies (3CosAdd and
    3CosMul accuracy, OOV %), gensim's conventions: one flat dict for the CLI's JSON line."""
    out: dict = {"words": len(v), "dim": v.dim, "restrict_vocab": restrict_vocab}
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        r = evaluate_word_pairs(v, gensim_test_data(file), restrict_vocab=restrict_vocab)
        out.update({f"{name}_spearman": r.spearman, f"{name}_pearson": r.pearson,
                    f"{name}_oov_pct": r.oov_ratio})
    if analogies:
        for method in METHODS:
            r = evaluate_analogies(v, restrict_vocab=restrict_vocab, method=method)
            out[f"google_{method}"] = r.accuracy
        out["google_oov_pct"] = r.oov_ratio
    return out
