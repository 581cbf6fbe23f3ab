"""Evaluation metrics for fine-tuning: classification, entity-level tagging, nested spans, SQuAD.

What this file does:
- classification: `accuracy`, `precision_recall_f1` (per label, micro, macro, weighted), `f1`,
  `matthews_corrcoef` (multi-class, Gorodkin 2004, the same quantity scikit-learn computes);
- sequence tagging: `get_entities` and `entity_prf` that reproduce seqeval 1.2.2 exactly, in its
  default conlleval-compatible mode and in its strict mode for the IOB2 and IOBES schemes
  (entity tags); `word_prf` for plain tag sets (part of speech): per-tag P/R/F1 over words,
  equal to scikit-learn's classification_report on the flattened words;
- nested / overlapping spans: `span_prf` over (sentence, start, end, label) sets;
- extractive QA: the official SQuAD v1.1 / v2.0 answer normalisation, `squad_exact_match`,
  `squad_f1` (max over the gold answers) and `squad_scores` over a whole data set.

What it does not: no torch (plain Python lists in, floats out), no plotting, no logging; a score
that divides by zero is 0.0 (seqeval's and scikit-learn's `zero_division="warn"` value) without a
warning.
"""

from __future__ import annotations

import collections
import math
import re
import string
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Sequence

# ----------------------------------------------------------------------------------------------
# the one place where precision, recall and F are computed from counts


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float
    support: int  # number of gold items


def _div(num: float, den: float) -> float:
    return num / den if den else 0.0


def _prf(tp: int, n_pred: int, n_gold: int) -> PRF:
    p = _div(tp, n_pred)
    r = _div(tp, n_gold)
    # F from P and R (seqeval's and scikit-learn's formula); 0 when both are 0
    f = _div(2 * p * r, p + r)
    return PRF(p, r, f, n_gold)


@dataclass
class Report:
    """Per-class scores and their micro / macro / support-weighted averages."""

    per_class: dict[Hashable, PRF]
    micro: PRF
    macro: PRF
    weighted: PRF
    counts: dict[Hashable, tuple[int, int, int]] = field(default_factory=dict)  # (tp, pred, gold)


def _report(counts: dict[Hashable, tuple[int, int, int]]) -> Report:
    per = {k: _prf(*c) for k, c in counts.items()}
    tp = sum(c[0] for c in counts.values())
    pred = sum(c[1] for c in counts.values())
    gold = sum(c[2] for c in counts.values())
    micro = _prf(tp, pred, gold)
    n = len(per)
    macro = PRF(
        _div(sum(s.precision for s in per.values()), n),
        _div(sum(s.recall for s in per.values()), n),
        _div(sum(s.f1 for s in per.values()), n),
        gold,
    )
    weighted = PRF(
        _div(sum(s.precision * s.support for s in per.values()), gold),
        _div(sum(s.recall * s.support for s in per.values()), gold),
        _div(sum(s.f1 * s.support for s in per.values()), gold),
        gold,
    )
    return Report(per, micro, macro, weighted, dict(counts))


def _check_same_length(y_true: Sequence, y_pred: Sequence) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")


# ----------------------------------------------------------------------------------------------
# classification


def accuracy(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    _check_same_length(y_true, y_pred)
    if not y_true:
        raise ValueError("accuracy of an empty set is undefined")
    return sum(t == p for t, p in zip(y_true, y_pred)) / len(y_true)


def precision_recall_f1(y_true: Sequence[Hashable], y_pred: Sequence[Hashable],
                        labels: Iterable[Hashable] | None = None) -> Report:
    """Per-label scores over single-label predictions.

    `labels` defaults to every label seen in y_true or y_pred (scikit-learn's default), so a label
    that is only ever predicted counts in the macro average with F = 0.
    """
    _check_same_length(y_true, y_pred)
    if labels is None:
        seen = set(y_true) | set(y_pred)
        try:
            keys = sorted(seen)
        except TypeError:  # mixed types: a stable order all the same
            keys = sorted(seen, key=repr)
    else:
        keys = list(labels)
    counts = {k: [0, 0, 0] for k in keys}
    for t, p in zip(y_true, y_pred):
        if p in counts:
            counts[p][1] += 1
        if t in counts:
            counts[t][2] += 1
            if t == p:
                counts[t][0] += 1
    return _report({k: tuple(c) for k, c in counts.items()})  # type: ignore[misc]


def f1(y_true: Sequence[Hashable], y_pred: Sequence[Hashable], average: str = "macro") -> float:
    """F1 averaged "macro" (mean over labels), "micro" (from pooled counts) or "weighted"."""
    rep = precision_recall_f1(y_true, y_pred)
    if average not in ("macro", "micro", "weighted"):
        raise ValueError(f"average must be macro, micro or weighted, not {average!r}")
    return getattr(rep, average).f1


def matthews_corrcoef(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    """Multi-class Matthews correlation (Gorodkin 2004's R_K), 0.0 when undefined.

    With confusion matrix C, t_k = row sums (gold), p_k = column sums (predicted), c = trace,
    s = total:  MCC = (c s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)).
    """
    _check_same_length(y_true, y_pred)
    s = len(y_true)
    t = collections.Counter(y_true)
    p = collections.Counter(y_pred)
    c = sum(a == b for a, b in zip(y_true, y_pred))
    keys = set(t) | set(p)
    cov_ytyp = c * s - sum(p[k] * t[k] for k in keys)
    cov_ypyp = s * s - sum(v * v for v in p.values())
    cov_ytyt = s * s - sum(v * v for v in t.values())
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return cov_ytyp / math.sqrt(cov_ytyt * cov_ypyp)


def word_prf(y_true: Sequence[Sequence[Hashable]], y_pred: Sequence[Sequence[Hashable]]) -> Report:
    """Per-tag precision / recall / F1 over the words of tagged sentences (plain tag sets such as
    part of speech, where every word is one decision): `precision_recall_f1` of the flattened
    words, labels = every tag in the gold or predicted words (classification_report's default).
    Micro F1 equals word accuracy. Sentence lengths must match."""
    _check_same_length(y_true, y_pred)
    for k, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {k}: {len(t)} gold tags but {len(p)} predicted")
    return precision_recall_f1([x for row in y_true for x in row], [x for row in y_pred for x in row])


# ----------------------------------------------------------------------------------------------
# entity-level scores for BIO / BIOES tag sequences (seqeval 1.2.2's semantics)

Entity = tuple[str, int, int]  # (type, start, end) with end INCLUSIVE, as seqeval returns them


def _split_tag(tag: str) -> tuple[str, str]:
    # seqeval default mode: prefix = first character, type = what follows the first '-', '_' if none
    prefix = tag[0] if tag else ""
    type_ = tag[1:].split("-", maxsplit=1)[-1] or "_"
    return prefix, type_


def _ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    # conlleval's endOfChunk, as seqeval writes it
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != type_


def _starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    # conlleval's startOfChunk: an I or E with no open chunk of its type starts one (lenient)
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != type_


def get_entities(tags: Sequence[str]) -> list[Entity]:
    """Chunks of one tag sequence, lenient (conlleval) rules: `I-X` after `O` starts an entity."""
    out: list[Entity] = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        t, ty = _split_tag(tag)
        if _ends(prev_tag, t, prev_type, ty):
            out.append((prev_type, begin, i - 1))
        if _starts(prev_tag, t, prev_type, ty):
            begin = i
        prev_tag, prev_type = t, ty
    return out


# Strict mode: an entity must be well formed in its scheme. A chunk starts at B (or S in IOBES),
# extends over I (and E) of the same type, and counts only if it is closed properly: in IOB2 any
# chunk that stops is closed; in IOBES only a chunk whose last tag is E or S is (seqeval's
# `Tokens.entities` with the IOB2 / IOBES pattern tables).
_SCHEME_PREFIXES = {"IOB2": set("IOB"), "IOBES": set("IOBES")}


def _strict_entities(tags: Sequence[str], scheme: str) -> list[Entity]:
    allowed = _SCHEME_PREFIXES[scheme]
    parsed = []
    for tag in tags:
        prefix = tag[:1]
        if prefix not in allowed:
            raise ValueError(f"tag {tag!r} is not valid in scheme {scheme} "
                             f"(allowed prefixes: {''.join(sorted(allowed))})")
        parsed.append((prefix, tag[1:].strip("-") or "_"))
    out: list[Entity] = []
    n, i = len(parsed), 0
    starts = ("B",) if scheme == "IOB2" else ("B", "S")
    while i < n:
        prefix, type_ = parsed[i]
        if prefix not in starts:
            i += 1
            continue
        j = i + 1
        if prefix == "B":
            prev = "B"
            while j < n and parsed[j][1] == type_ and (
                (scheme == "IOB2" and parsed[j][0] == "I")
                or (scheme == "IOBES" and prev in ("B", "I") and parsed[j][0] in ("I", "E"))
            ):
                prev = parsed[j][0]
                j += 1
        last = parsed[j - 1][0]
        if scheme == "IOB2" or last in ("E", "S"):
            out.append((type_, i, j - 1))
        i = j
    return out


def entity_prf(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]],
               mode: str = "default", scheme: str | None = None) -> Report:
    """Entity-level precision / recall / F1 per entity type, equal to seqeval 1.2.2.

    mode="default": seqeval's default (conlleval) chunking, whatever the scheme (BIO or BIOES).
    mode="strict": `scheme` "IOB2" (= BIO) or "IOBES" (= BIOES); ill-formed chunks do not count
    (seqeval's `mode="strict", scheme=IOB2 | IOBES`).
    An entity is correct when type, start and end all match. Sentences never share an entity.
    """
    _check_same_length(y_true, y_pred)
    if mode == "strict":
        if scheme not in _SCHEME_PREFIXES:
            raise ValueError(f"strict mode needs scheme IOB2 or IOBES, not {scheme!r}")
        extract = lambda tags: _strict_entities(tags, scheme)  # noqa: E731
    elif mode == "default":
        extract = get_entities
    else:
        raise ValueError(f"mode must be 'default' or 'strict', not {mode!r}")
    gold: dict[str, set] = collections.defaultdict(set)
    pred: dict[str, set] = collections.defaultdict(set)
    for sent, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {sent}: {len(t)} gold tags but {len(p)} predicted tags")
        for type_, s, e in extract(t):
            gold[type_].add((sent, s, e))
        for type_, s, e in extract(p):
            pred[type_].add((sent, s, e))
    counts = {k: (len(gold[k] & pred[k]), len(pred[k]), len(gold[k]))
              for k in sorted(set(gold) | set(pred))}
    return _report(counts)


# ----------------------------------------------------------------------------------------------
# nested / overlapping spans


def span_prf(gold: Sequence[Iterable[tuple[int, int, str]]],
             pred: Sequence[Iterable[tuple[int, int, str]]]) -> Report:
    """Span-level scores: a predicted (start, end, label) is correct when the gold sentence has
    the very same triple. Spans may nest or overlap; duplicates within a sentence count once."""
    _check_same_length(gold, pred)
    g: dict[str, set] = collections.defaultdict(set)
    p: dict[str, set] = collections.defaultdict(set)
    for sent, (gs, ps) in enumerate(zip(gold, pred)):
        for s, e, lab in gs:
            g[lab].add((sent, s, e))
        for s, e, lab in ps:
            p[lab].add((sent, s, e))
    counts = {k: (len(g[k] & p[k]), len(p[k]), len(g[k])) for k in sorted(set(g) | set(p))}
    return _report(counts)


# ----------------------------------------------------------------------------------------------
# SQuAD (the official evaluate-v1.1.py / evaluate-v2.0.py rules)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _exact(gold: str, pred: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(pred))


def _token_f1(gold: str, pred: str) -> float:
    g = normalize_answer(gold).split()
    p = normalize_answer(pred).split()
    if not g or not p:  # v2.0: a no-answer is right only against a no-answer
        return float(g == p)
    common = collections.Counter(g) & collections.Counter(p)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def _golds(golds: Sequence[str]) -> list[str]:
    # v2.0 rule: gold answers that normalise to nothing are dropped; no gold at all means the
    # question has no answer, and the right prediction is the empty string
    kept = [a for a in golds if normalize_answer(a)]
    return kept or [""]


def squad_exact_match(prediction: str, gold_answers: Sequence[str]) -> float:
    return max(_exact(g, prediction) for g in _golds(gold_answers))


def squad_f1(prediction: str, gold_answers: Sequence[str]) -> float:
    return max(_token_f1(g, prediction) for g in _golds(gold_answers))


def squad_scores(predictions: dict[str, str], gold: dict[str, Sequence[str]]) -> dict[str, float]:
    """Mean EM and F1 in percent over every gold question (a missing prediction scores 0, as in
    the official script), plus HasAns / NoAns breakdowns when both kinds are present."""
    if not gold:
        raise ValueError("no gold questions to score")
    em: dict[str, float] = {}
    f: dict[str, float] = {}
    for qid, answers in gold.items():
        pred = predictions.get(qid)
        if pred is None:
            em[qid] = f[qid] = 0.0
            continue
        em[qid] = squad_exact_match(pred, answers)
        f[qid] = squad_f1(pred, answers)
    out = {"exact": 100.0 * sum(em.values()) / len(gold), "f1": 100.0 * sum(f.values()) / len(gold),
           "total": float(len(gold))}
    has = [q for q, a in gold.items() if any(normalize_answer(x) for x in a)]
    has_set = set(has)
    no = [q for q in gold if q not in has_set]
    for name, qs in (("HasAns", has), ("NoAns", no)):
        if qs and len(qs) < len(gold):
            out[f"{name}_exact"] = 100.0 * sum(em[q] for q in qs) / len(qs)
            out[f"{name}_f1"] = 100.0 * sum(f[q] for q in qs) / len(qs)
            out[f"{name}_total"] = float(len(qs))
    return out
