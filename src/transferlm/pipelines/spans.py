"""`SpanTagger`: nested and overlapping entities by classifying every span of up to L words.

    st = SpanTagger.new("minilm", labels=["ORG", "LOC", ...], max_width=8)
    st.fit(token_lists, span_lists, dev=(...), epochs=10)   # span_lists: [(start, end, label), ...]
    st.predict_tokens([["The", "University", "of", "New", "York"]])
        -> [[{"label", "start", "end", "text", "score"}]]   (word indices, end exclusive)
    st.predict(["The University of New York hospital"])    -> same with character offsets
    st.evaluate(token_lists, span_lists) -> span-level micro precision / recall / F1

Subwords are pooled into words (first subword or mean), then heads/spans.py's SpanClassifier
scores [s_i; e_j; pool(h_i..h_j)] for every span (Lee et al. 2017), softmax over NULL + labels.
A calibrated threshold on the best non-NULL probability (`calibrate`, on dev data) can replace
the argmax rule.

What it does not: window long inputs (words past max_length subwords are cut: they can be
neither trained on nor predicted; `evaluate` counts their gold spans as misses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

from torch import Tensor

from ..data.finetune_collate import encode_words
from ..heads.spans import SpanClassifier, calibrate_threshold
from ..heads.tagging import pool_words
from ..training import metrics
from .base import FitConfig, Pipeline, encode_batch, entities_in_texts


@dataclass
class SpanOptions:
    max_width: int = 8  # longest span in words (covers ~all named entities; cost grows with it)
    span_pooling: str = "mean"  # g_ij: mean of h_i..h_j | attention (Lee et al.'s head finder)
    word_pooling: str = "first"  # word state from its first subword | the mean of its subwords
    ffnn_size: int = 150  # Lee et al. 2017 sec. 9
    dropout: float = 0.2  # Lee et al. 2017 on the FFNNs
    max_length: int = 128  # subwords per sentence
    threshold: float | None = None  # None: argmax != NULL; a float: best label prob >= threshold

    def __post_init__(self) -> None:
        if self.word_pooling not in ("first", "mean", "max"):
            raise ValueError(f"word_pooling must be first, mean or max, not {self.word_pooling!r}")


def _spans(rows) -> list[list[tuple[int, int, str]]]:
    """Spans as (start, end, label) tuples from tuples, dicts or formats.Span objects."""
    out = []
    for row in rows:
        r = []
        for sp in row:
            if isinstance(sp, dict):
                r.append((int(sp["start"]), int(sp["end"]), str(sp["label"])))
            elif hasattr(sp, "label"):
                r.append((sp.start, sp.end, sp.label))
            else:
                a, b, lab = sp
                r.append((int(a), int(b), str(lab)))
        out.append(r)
    return out


class SpanTagger(Pipeline):
    task = "spans"
    architecture = "BertForTokenClassification"  # encoder under bert.; the span head is ours
    hf_prefix = "classifier.span."
    dev_metric = "f1"  # early stopping: span F1 on dev
    Options = SpanOptions

    def _build_head(self) -> SpanClassifier:
        o = self.options
        return SpanClassifier(self.encoder.config.hidden_size, len(self.labels), o.max_width,
                              o.ffnn_size, o.span_pooling, o.dropout)

    def _words(self, encoder, batch) -> tuple[Tensor, Tensor]:
        hidden = encode_batch(encoder, batch).last_hidden_state  # (B, T, C)
        return pool_words(hidden, batch["word_ids"], self.options.word_pooling)  # (B, W, C), (B, W)

    def _step(self, encoder, head, batch: dict[str, Any]) -> dict[str, Tensor]:
        words, wmask = self._words(encoder, batch)
        logits = head(words, wmask)  # (B, S, K+1)
        res = {"logits": logits, "word_mask": wmask}
        if "spans" in batch:
            lengths = wmask.sum(1).tolist()
            targets, _ = head.span_targets(batch["spans"], lengths, words.shape[1])
            res["loss"] = head.loss(logits, targets.to(logits.device))
        return res

    # ------------------------------------------------------------------ features
    def features(self, sentences: Sequence[Sequence[str]], spans=None) -> list[dict[str, Any]]:
        if isinstance(sentences, str) or (sentences and isinstance(sentences[0], str)):
            raise TypeError("pass a list of token lists (pre-tokenized sentences)")
        index = {lab: i for i, lab in enumerate(self.labels)}
        gold = _spans(spans) if spans is not None else None
        feats = []
        for s, words in enumerate(sentences):
            win = encode_words(self.tokenizer, words, self.max_length, windows=False)[0]
            f: dict[str, Any] = {"input_ids": win.input_ids, "token_type_ids": win.token_type_ids,
                                 "word_ids": [-1 if w is None else w for w in win.word_ids]}
            if gold is not None:
                n = max(w for w in win.word_ids if w is not None) + 1
                row = []
                for a, b, lab in gold[s]:
                    if lab not in index:
                        raise KeyError(f"sentence {s}: unknown span label {lab!r}; the labels are {self.labels}")
                    if not 0 <= a < b <= len(words):
                        raise ValueError(f"sentence {s}: span [{a}, {b}) is outside its {len(words)} words")
                    if b <= n:  # spans cut off by max_length cannot be trained on
                        row.append((a, b, index[lab]))
                f["spans"] = row
            feats.append(f)
        return feats

    # ------------------------------------------------------------------ training
    def fit(self, sentences: Sequence[Sequence[str]], spans, *, dev: tuple | None = None,
            epochs: float = 10.0,  # span heads start from scratch (FFNNs): more epochs than a linear head
            lr: float = 1e-4, batch_size: int = 16,
            head_lr: float | None = 1e-3,  # the FFNN scorer starts from scratch (see FitConfig)
            **fit_options) -> list[dict[str, Any]]:
        if len(sentences) != len(spans):
            raise ValueError(f"{len(sentences)} sentences but {len(spans)} span lists")
        fit = FitConfig(epochs=epochs, lr=lr, batch_size=batch_size, head_lr=head_lr, **fit_options)
        feats = self.features(sentences, spans)
        dev_eval = None
        if dev is not None:
            dev_eval = lambda: self.evaluate(dev[0], dev[1])  # noqa: E731
        return self.fit_features(feats, fit, dev_eval)

    # ------------------------------------------------------------------ inference
    def _scored(self, sentences: Sequence[Sequence[str]], threshold: float | None,
                batch_size: int = 32) -> list[list[tuple[int, int, int, float]]]:
        feats = self.features(sentences)

        def run(batch):
            out = self.model(batch)
            return self.head.decode(out["logits"].float(), out["word_mask"], threshold=threshold)

        return self.predict_batches(feats, run, batch_size)

    def predict_tokens(self, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[list[dict[str, Any]]]:
        rows = self._scored(sentences, self.options.threshold, batch_size)
        return [[{"label": self.labels[k], "start": a, "end": b, "text": " ".join(words[a:b]), "score": p}
                 for a, b, k, p in row] for words, row in zip(sentences, rows)]

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[list[dict[str, Any]]]:
        """Spans of raw texts with character offsets (end exclusive) into each text."""
        return entities_in_texts(texts, lambda sents: self.predict_tokens(sents, batch_size))

    def evaluate(self, sentences: Sequence[Sequence[str]], spans) -> dict[str, float]:
        gold = _spans(spans)
        unknown = sorted({lab for row in gold for _, _, lab in row} - set(self.labels))
        if unknown:
            raise KeyError(f"unknown span labels {unknown}; the model knows {self.labels}")
        pred = [[(e["start"], e["end"], e["label"]) for e in row] for row in self.predict_tokens(sentences)]
        rep = metrics.span_prf(gold, pred)
        return {"precision": rep.micro.precision, "recall": rep.micro.recall, "f1": rep.micro.f1,
                "macro_f1": rep.macro.f1, "n": float(len(gold))}

    def calibrate(self, sentences: Sequence[Sequence[str]], spans) -> float:
        """Set `options.threshold` to the value that maximises span F1 on these (dev) data."""
        gold = _spans(spans)
        rows = self._scored(sentences, 0.0)  # every real span with its best label
        scores, correct = [], []
        for s, row in enumerate(rows):
            g = set(gold[s])
            for a, b, k, p in row:
                scores.append(p)
                correct.append((a, b, self.labels[k]) in g)
        t, _ = calibrate_threshold(scores, correct, sum(len(g) for g in gold))
        self.options.threshold = t
        return t

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "SpanTagger":
        return super().from_pretrained(folder)  # type: ignore[return-value]
