"""`QuestionAnswerer`: extractive QA (SQuAD v1.1 and v2.0) over long contexts in windows.

    qa = QuestionAnswerer.new("minilm", max_length=384, stride=128)
    qa.fit(examples, dev=dev_examples, epochs=2)         # examples: formats.QAExample list
    qa.predict([{"question": ..., "context": ...}])
        -> [{"answer": str, "start": int, "end": int, "score": float}]   ("" / -1 for no answer)
    qa.evaluate(examples) -> {"exact", "f1", ...} (the official SQuAD scores, in percent)

Each (question, context) is encoded as `[CLS] question [SEP] context [SEP]`; a context longer
than max_length goes into windows overlapping by `stride` subwords (the tokenizer's overflow).
Training targets are the answer's first and last subword in each window, or [CLS] (index 0)
when the window does not hold the whole answer or the question has none (BERT sec. 4.2-4.3).
Prediction takes the best legal span over all windows (heads/qa.py's `predict_answer`); with
SQuAD v2.0 training data (any impossible question) the no-answer option is on: answer "" when
null score - best span score > `null_threshold` (0.0 until `calibrate` tunes it on dev data).

What it does not: answer from several documents at once, or generate answers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

from torch import Tensor

from ..data.formats import QAExample
from ..heads.qa import QAHead, QAWindow, answer_token_span, predict_answer
from ..training import metrics
from .base import FitConfig, Pipeline, encode_batch


@dataclass
class QAOptions:
    max_length: int = 384  # BERT's SQuAD setting (run_squad.py max_seq_length)
    stride: int | None = None  # overlap between context windows; None: max_length // 3
    # (run_squad.py's doc_stride 128 at max_seq_length 384)
    max_answer_length: int = 30  # run_squad.py: longest answer in subwords
    null_threshold: float | None = None  # None: always answer (v1.1); a float: v2.0 no-answer rule

    def __post_init__(self) -> None:
        if self.stride is None:
            self.stride = self.max_length // 3
        if self.max_length < 16 or not 0 <= self.stride < self.max_length:
            raise ValueError(f"need max_length >= 16 and 0 <= stride < max_length, got "
                             f"{self.max_length}, {self.stride}")


def _examples(items) -> list[QAExample]:
    out = []
    for k, it in enumerate(items):
        if isinstance(it, QAExample):
            out.append(it)
        elif isinstance(it, dict):
            if not isinstance(it.get("question"), str) or not isinstance(it.get("context"), str):
                raise ValueError(f"item {k}: expected {{'question': str, 'context': str}}, got keys {sorted(it)}")
            out.append(QAExample(str(it.get("id", k)), it["question"], it["context"], []))
        else:
            raise TypeError(f"item {k}: expected a QAExample or a dict, got {type(it).__name__}")
    return out


class QuestionAnswerer(Pipeline):
    task = "qa"
    architecture = "BertForQuestionAnswering"
    hf_prefix = "qa_outputs."
    hf_label_map = False  # extractive QA has no label set
    dev_metric = "f1"  # early stopping: SQuAD F1 on dev
    Options = QAOptions

    @classmethod
    def _check_labels(cls, labels):
        return []  # extractive QA has no label set

    def _build_head(self) -> QAHead:
        return QAHead(self.encoder.config.hidden_size)

    def _step(self, encoder, head, batch: dict[str, Any]) -> dict[str, Tensor]:
        start, end = head(encode_batch(encoder, batch).last_hidden_state)  # (B, T) each
        res = {"start_logits": start, "end_logits": end}
        if "start_positions" in batch:
            res["loss"] = head.loss((start, end), batch["start_positions"], batch["end_positions"])
        return res

    # ------------------------------------------------------------------ features
    def features(self, examples: Sequence[QAExample], train: bool = False
                 ) -> tuple[list[dict[str, Any]], list[tuple[int, list, list]]]:
        """Windows (and, for training, their targets) and per window (example, offsets, seq ids)."""
        feats, meta = [], []
        specials = self.tokenizer.num_special_tokens_to_add(True)
        for k, ex in enumerate(examples):
            room = self.max_length - specials - len(self.tokenizer.encode(ex.question, add_special_tokens=False).ids)
            if room < 8:
                raise ValueError(f"question {ex.id!r} leaves {room} of max_length {self.max_length} "
                                 f"subwords for the context; raise max_length or shorten it")
            # a long question leaves less room: keep the overlap under half of it
            stride = min(self.options.stride, room // 2)
            enc = self.tokenizer.encode(ex.question, ex.context, max_length=self.max_length,
                                        truncation="only_second", stride=stride,
                                        return_overflowing=True)
            for w in [enc, *enc.overflowing]:
                f: dict[str, Any] = {"input_ids": w.ids, "token_type_ids": w.type_ids}
                if train:
                    if ex.answers:
                        a = ex.answers[0]  # SQuAD training data has one answer per question
                        s, e = answer_token_span(w.offsets, w.sequence_ids, a.start, a.start + len(a.text))
                    else:
                        s = e = 0  # impossible: point at [CLS]
                    f["start_positions"], f["end_positions"] = s, e
                feats.append(f)
                meta.append((k, w.offsets, w.sequence_ids))
        return feats, meta

    # ------------------------------------------------------------------ training
    def fit(self, examples: Sequence[QAExample], *, dev: Sequence[QAExample] | None = None,
            epochs: float = 2.0,  # BERT sec. 4.2: 2-3 epochs on SQuAD
            lr: float = 1e-4, batch_size: int = 16, **fit_options) -> list[dict[str, Any]]:
        examples = _examples(examples)
        if any(ex.is_impossible for ex in examples) and self.options.null_threshold is None:
            self.options.null_threshold = 0.0  # SQuAD v2.0 data: allow "no answer"
        fit = FitConfig(epochs=epochs, lr=lr, batch_size=batch_size, **fit_options)
        feats, _ = self.features(examples, train=True)
        dev_eval = (lambda: self.evaluate(dev)) if dev is not None else None  # noqa: E731
        return self.fit_features(feats, fit, dev_eval)

    # ------------------------------------------------------------------ inference
    def _predictions(self, examples: list[QAExample], batch_size: int = 32, threshold="options"):
        feats, meta = self.features(examples)

        def run(batch):
            out = self.model(batch)
            n = batch["attention_mask"].sum(1).tolist()
            return [(out["start_logits"][b, :n[b]].float().cpu(), out["end_logits"][b, :n[b]].float().cpu())
                    for b in range(len(n))]

        rows = self.predict_batches(feats, run, batch_size)
        windows: list[list[QAWindow]] = [[] for _ in examples]
        for (k, offsets, seq), (s, e) in zip(meta, rows):
            windows[k].append(QAWindow(s, e, offsets[:len(s)], seq[:len(s)]))
        t = self.options.null_threshold if threshold == "options" else threshold
        return [predict_answer(w, ex.context, self.options.max_answer_length, null_threshold=t)
                for w, ex in zip(windows, examples)]

    def predict(self, items: Sequence[dict[str, Any] | QAExample], batch_size: int = 32) -> list[dict[str, Any]]:
        preds = self._predictions(_examples(items), batch_size)
        return [{"answer": p.text, "start": p.char_start, "end": p.char_end, "score": p.score}
                for p in preds]

    def evaluate(self, examples: Sequence[QAExample]) -> dict[str, float]:
        examples = _examples(examples)
        preds = self._predictions(examples)
        gold = {ex.id: [a.text for a in ex.answers] for ex in examples}
        return metrics.squad_scores({ex.id: p.text for ex, p in zip(examples, preds)}, gold)

    def calibrate(self, examples: Sequence[QAExample]) -> float:
        """Tune the no-answer threshold on dev data for the best SQuAD F1 (BERT sec. 4.3)."""
        examples = _examples(examples)
        preds = self._predictions(examples, threshold=None)
        gold = {ex.id: [a.text for a in ex.answers] for ex in examples}
        diffs = sorted({p.null_score - p.score for p in preds if p.score != float("-inf")})
        best_t, best_f = 0.0, -1.0
        for t in [min(diffs) - 1.0] + diffs if diffs else [0.0]:
            pred = {ex.id: ("" if p.null_score - p.score > t or not p.text else p.text)
                    for ex, p in zip(examples, preds)}
            f = metrics.squad_scores(pred, gold)["f1"]
            if f > best_f:
                best_t, best_f = t, f
        self.options.null_threshold = best_t
        return best_t

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "QuestionAnswerer":
        return super().from_pretrained(folder)  # type: ignore[return-value]
