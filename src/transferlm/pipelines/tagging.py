"""`Tagger`: sequence tagging of any tag set (entities in BIO / BIOES, part of speech, any other
plain tags) with a softmax or CRF head, word-level in and out.

    tagger = Tagger.new("minilm", labels=["O", "B-person", "I-person", ...], head="crf")
    tagger.fit(token_lists, tag_lists, dev=(dev_tokens, dev_tags), epochs=5)
    tagger.predict(["Obama visited Paris"])  -> [[{"label", "text", "start", "end", "score"}]]
        (entities, character offsets into each text, end exclusive; words found by a
        tweet-aware regex); a plain tag set gives one {"tag", "text", "start", "end", "score"}
        per word instead
    tagger.predict_tokens([["Obama", "visited", "Paris"]])
        -> [{"tokens", "tags", "entities": [{"label", "text", "start", "end", "score"}]}]
        (start / end are word indices here, end exclusive); plain tags: {"tokens", "tags", "scores"}
    tagger.evaluate(token_lists, tag_lists) -> entity-level precision / recall / F1 (seqeval's)
        for BIO / BIOES; word accuracy and per-tag / macro F1 (scikit-learn's
        classification_report) for plain tags

The tag scheme ("bio", "bioes" or "plain", data/formats.py's `detect_scheme`) is detected from
the labels or given (`scheme=`); it decides the CRF's transition constraints, the window label
repairs and the metrics, and is saved with the model.

Options (heads/tagging.py does the work): head "softmax" (y_t = softmax(W h_t), BERT sec. 4.3)
or "crf" (linear-chain CRF over word positions, BIO / BIOES transition constraints, Viterbi);
training labels on the first subword of each word or on all its subwords; decoding from the
first subword's scores or the mean / max over the word's subwords; inputs longer than
max_length are cut into windows overlapping by `stride` subwords and each word keeps the
prediction of the window where it has the most context (`merge_windows`).

An entity's score is the mean, over its words, of the probability of the predicted tag (the
softmax of the word's scores; for the CRF, of its emissions: a per-word confidence, not the
CRF's marginal).

What it does not: nested entities (SpanTagger), or its own word splitting of pre-tokenized input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from ..data.finetune_collate import align_window_labels, encode_words, word_spans
from ..data.formats import detect_scheme, normalize_scheme
from ..heads.tagging import CRFTagger, TokenTagger, merge_windows
from ..training import metrics
from .base import FitConfig, Pipeline, encode_batch, entities_in_texts


@dataclass
class TaggerOptions:
    # crf (default, as Flair's SequenceTagger): entity F1 0.580 vs 0.513 for softmax on WNUT-16
    # (benchmarks/finetune.py, full split); softmax is the head transformers loads with the same logits
    head: str = "crf"  # crf | softmax
    label_all_subwords: bool = False  # train on every subword (BIO only) or the first of each word
    aggregation: str = "first"  # word scores at decoding: first subword | mean | max over subwords
    max_length: int = 128  # subwords per window (tweets: < 100; longer inputs are windowed)
    stride: int | None = None  # overlap between windows in subwords; None: max_length // 4
    dropout: float = 0.1  # BERT's dropout before the tagging layer
    constraints: bool = True  # CRF: forbid ill-formed BIO / BIOES transitions (plain tags have none)
    scheme: str | None = None  # bio | bioes | plain; None: detected from the labels

    def __post_init__(self) -> None:
        if self.scheme is not None:
            self.scheme = normalize_scheme(self.scheme)
        if self.head not in ("softmax", "crf"):
            raise ValueError(f"head must be softmax or crf, not {self.head!r}")
        if self.aggregation not in ("first", "mean", "max"):
            raise ValueError(f"aggregation must be first, mean or max, not {self.aggregation!r}")
        if self.stride is None:
            self.stride = self.max_length // 4  # a quarter of context on each side of a cut
        if not 0 <= self.stride < self.max_length - 2:
            raise ValueError(f"need 0 <= stride < max_length - 2, got {self.stride}, {self.max_length}")


def tag_scheme(labels: Sequence[str], scheme: str | None = None) -> str:
    """The tag scheme of a label list: detected ("bio", "bioes" or "plain") when `scheme` is
    None, else `scheme` checked against the labels (BIO / BIOES need every label entity-shaped)."""
    if scheme is None:
        return detect_scheme(labels)
    scheme = normalize_scheme(scheme)
    if scheme == "plain":
        return scheme
    bad = [t for t in labels if t != "O" and not (len(t) > 2 and t[1] == "-" and t[0] in
                                                  ("BI" if scheme == "bio" else "BIES"))]
    if bad:
        raise ValueError(f"scheme {scheme!r} needs 'O' or {'B/I' if scheme == 'bio' else 'B/I/E/S'}"
                         f"-<type> labels, but {bad[:5]} are not (give scheme='plain' for "
                         f"part-of-speech or other tag sets)")
    return scheme


class Tagger(Pipeline):
    task = "tag"
    architecture = "BertForTokenClassification"
    hf_prefix = "classifier."
    dev_metric = "f1"  # early stopping: entity F1 on dev
    Options = TaggerOptions

    def __init__(self, encoder, tokenizer, labels: Sequence[str], options: TaggerOptions):
        options.scheme = tag_scheme(list(labels), options.scheme)  # detected once, then saved
        super().__init__(encoder, tokenizer, labels, options)

    @property
    def scheme(self) -> str:
        """"bio", "bioes" or "plain"."""
        return self.options.scheme

    def _build_head(self):
        C, K = self.encoder.config.hidden_size, len(self.labels)
        if self.options.head == "softmax":
            return TokenTagger(C, K, self.options.dropout)
        constraints = self.scheme if self.options.constraints and self.scheme != "plain" else None
        return CRFTagger(C, K, self.options.dropout, labels=self.labels, constraints=constraints)

    def _step(self, encoder, head, batch: dict[str, Any]) -> dict[str, Tensor]:
        logits = head(encode_batch(encoder, batch).last_hidden_state)  # (B, T, K)
        res = {"logits": logits}
        if "labels" in batch:
            res["loss"] = head.loss(logits, batch["labels"])
        return res

    # ------------------------------------------------------------------ features
    def features(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]] | None = None
                 ) -> tuple[list[dict[str, Any]], list[int]]:
        """Encoded windows and, for each, the index of its sentence."""
        if isinstance(sentences, str) or (sentences and isinstance(sentences[0], str)):
            raise TypeError("pass a list of token lists (pre-tokenized sentences)")
        index = {lab: i for i, lab in enumerate(self.labels)}
        feats, owner = [], []
        for s, words in enumerate(sentences):
            word_labels = None
            if tags is not None:
                if len(tags[s]) != len(words):
                    raise ValueError(f"sentence {s}: {len(words)} tokens but {len(tags[s])} tags")
                try:
                    word_labels = [index[t] for t in tags[s]]
                except KeyError as e:
                    raise KeyError(f"sentence {s}: unknown tag {e.args[0]!r}; the tags are {self.labels}") from None
            for win in encode_words(self.tokenizer, words, self.max_length, self.options.stride):
                f: dict[str, Any] = {"input_ids": win.input_ids, "token_type_ids": win.token_type_ids,
                                     "word_ids": [-1 if w is None else w for w in win.word_ids]}
                if word_labels is not None:
                    f["labels"] = align_window_labels(win.word_ids, word_labels, self.labels,
                                                      self.options.label_all_subwords, self.scheme)
                feats.append(f)
                owner.append(s)
        return feats, owner

    # ------------------------------------------------------------------ training
    def fit(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]], *,
            dev: tuple | None = None, epochs: float = 5.0,  # WNUT reference: 5 epochs
            lr: float = 1e-4,  # MiniLM-size encoders; the WNUT reference's rate
            batch_size: int = 16, head_lr: float | None = None, **fit_options) -> list[dict[str, Any]]:
        """Fine-tune on pre-tokenized sentences and their tags; dev = (sentences, tags) is scored
        after every epoch (entity F1, or word accuracy for plain tags). Other options: see
        base.FitConfig.

        head_lr None: 1e-3 for the softmax head (on WNUT-16, 600 tweets x 3 epochs, entity F1
        0.205 -> 0.261 against 1e-4; benchmarks/finetune.py), lr for the CRF head."""
        if len(sentences) != len(tags):
            raise ValueError(f"{len(sentences)} sentences but {len(tags)} tag lists")
        if head_lr is None and self.options.head == "softmax":
            head_lr = 1e-3
        fit = FitConfig(epochs=epochs, lr=lr, batch_size=batch_size, head_lr=head_lr, **fit_options)
        feats, _ = self.features(sentences, tags)
        dev_eval = None
        if dev is not None:
            d_sents, d_tags = dev
            dev_eval = lambda: self.evaluate(d_sents, d_tags)  # noqa: E731
        return self.fit_features(feats, fit, dev_eval)

    # ------------------------------------------------------------------ inference
    def _word_scores(self, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[Tensor]:
        """(W, K) word-level scores per sentence: log-probabilities (softmax head) or emissions."""
        feats, owner = self.features(sentences)
        crf = self.options.head == "crf"

        def run(batch):
            logits = self.model(batch)["logits"].float()
            if not crf:
                logits = logits.log_softmax(-1)
            n = batch["attention_mask"].sum(1).tolist()
            return [(batch["word_ids"][b, :n[b]].tolist(), logits[b, :n[b]].cpu()) for b in range(len(n))]

        rows = self.predict_batches(feats, run, batch_size)
        per: list[list] = [[] for _ in sentences]
        for s, r in zip(owner, rows):
            per[s].append(r)
        return [merge_windows(w, len(sentences[s]), self.options.aggregation) for s, w in enumerate(per)]

    def predict_tags(self, sentences: Sequence[Sequence[str]], batch_size: int = 32
                     ) -> tuple[list[list[str]], list[list[float]]]:
        """Tags per word and the probability of each predicted tag."""
        if not sentences:
            return [], []
        scores = self._word_scores(sentences, batch_size)
        probs = [s.softmax(-1) for s in scores]
        if self.options.head == "softmax":
            ids = [s.argmax(-1).tolist() for s in scores]
        else:
            ids = []
            for k in range(0, len(scores), 64):
                chunk = scores[k:k + 64]
                W = max(s.shape[0] for s in chunk)
                em = torch.zeros(len(chunk), W, len(self.labels))  # (B, W, K)
                mask = torch.zeros(len(chunk), W, dtype=torch.bool)
                for b, s in enumerate(chunk):
                    em[b, :s.shape[0]] = s
                    mask[b, :s.shape[0]] = True
                paths, _ = self.head.crf.viterbi(em, mask)
                ids.extend(paths)
        tags = [[self.labels[i] for i in row] for row in ids]
        conf = [[float(p[w, i]) for w, i in enumerate(row)] for p, row in zip(probs, ids)]
        return tags, conf

    def predict_tokens(self, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[dict[str, Any]]:
        """Per sentence: tokens and tags, with the entities (BIO / BIOES) or each tag's
        probability (`scores`, plain tags: there are no entity spans)."""
        tags, conf = self.predict_tags(sentences, batch_size)
        out = []
        for words, t, c in zip(sentences, tags, conf):
            if self.scheme == "plain":
                out.append({"tokens": list(words), "tags": t, "scores": c})
                continue
            ents = [{"label": typ, "start": s, "end": e + 1, "text": " ".join(words[s:e + 1]),
                     "score": sum(c[s:e + 1]) / (e + 1 - s)} for typ, s, e in metrics.get_entities(t)]
            out.append({"tokens": list(words), "tags": t, "entities": ents})
        return out

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[list[dict[str, Any]]]:
        """Raw texts -> per text, its entities (BIO / BIOES) with character offsets (end
        exclusive), or for plain tags every word: {"tag", "text", "start", "end", "score"}."""
        if self.scheme != "plain":
            return entities_in_texts(texts, lambda sents: [r["entities"] for r in self.predict_tokens(sents, batch_size)])
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string")
        spans = [word_spans(t) for t in texts]  # per text: (word, char start, char end)
        keep = [i for i, sp in enumerate(spans) if sp]
        res = self.predict_tokens([[w for w, _, _ in spans[i]] for i in keep], batch_size)
        out: list[list[dict[str, Any]]] = [[] for _ in texts]
        for i, r in zip(keep, res):
            out[i] = [{"tag": tag, "text": w, "start": a, "end": b, "score": sc}
                      for (w, a, b), tag, sc in zip(spans[i], r["tags"], r["scores"])]
        return out

    def evaluate(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]],
                 per_tag: bool = False) -> dict[str, Any]:
        """BIO / BIOES: entity-level micro precision / recall / F1 (seqeval's default mode), macro
        F1 over entity types and token accuracy (a tag the model does not know is a KeyError).
        Plain tags: word `accuracy`, `macro_f1` and `weighted_f1` over the tags (scikit-learn's
        classification_report on the same words); a gold tag the model does not know (an open
        tag set such as Brown's) is scored as an error and counted in `unseen_tag_words`;
        per_tag=True adds "per_tag": {tag: {precision, recall, f1, support}}."""
        known = set(self.labels)
        unknown = sorted({t for row in tags for t in row} - known)
        if unknown and self.scheme != "plain":
            raise KeyError(f"unknown tags {unknown}; the model knows {self.labels}")
        pred, _ = self.predict_tags(sentences)
        gold = [list(t) for t in tags]
        flat_g = [t for row in gold for t in row]
        flat_p = [t for row in pred for t in row]
        if self.scheme == "plain":
            rep = metrics.word_prf(gold, pred)
            out: dict[str, Any] = {"accuracy": metrics.accuracy(flat_g, flat_p),
                                   "macro_f1": rep.macro.f1, "weighted_f1": rep.weighted.f1,
                                   "n": float(len(tags)), "words": float(len(flat_g)),
                                   # gold tags the model does not know (an open tag set): errors
                                   "unseen_tag_words": float(sum(t not in known for t in flat_g))}
            if per_tag:
                out["per_tag"] = {str(k): {"precision": v.precision, "recall": v.recall, "f1": v.f1,
                                           "support": v.support} for k, v in rep.per_class.items()}
            return out
        rep = metrics.entity_prf(gold, pred)
        return {"precision": rep.micro.precision, "recall": rep.micro.recall, "f1": rep.micro.f1,
                "macro_f1": rep.macro.f1, "token_accuracy": metrics.accuracy(flat_g, flat_p),
                "n": float(len(tags))}

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "Tagger":
        return super().from_pretrained(folder)  # type: ignore[return-value]
