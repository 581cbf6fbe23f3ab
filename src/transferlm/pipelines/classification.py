"""`TextClassifier`: single texts and sentence pairs, fine-tuned end to end.

    clf = TextClassifier.new("minilm", labels=[...], pooling="cls", max_length=256)
    clf.fit(texts, labels, dev=(dev_texts, dev_labels), epochs=4)
    clf.predict(texts)            -> [{"label": str, "score": float}, ...]
    clf.predict_proba(texts)      -> (N, K) numpy array, columns in `clf.labels` order
    clf.evaluate(texts, labels)   -> {"accuracy", "macro_f1", "micro_f1", "mcc"}
    pairs: every method takes `pairs=[...]` ([CLS] A [SEP] B [SEP] with segment ids 0 / 1)

The head is heads/classification.py's. With pooling="cls" it reads BERT's pooler output
tanh(W h_[CLS] + b) (BERT sec. 4.1, what transformers' BertForSequenceClassification does), so
the saved folder loads in transformers' AutoModelForSequenceClassification with the same logits.
"mean" and "concat" (ULMFiT sec. 3.3) pool the last hidden states instead; their classifier
weights keep the HF names but only transferlm reproduces those logits.

On a causal decoder (GPT-2, Llama, SmolLM2: `TextClassifier.new("smollm2", ...)`) `new` returns
a `DecoderClassifier` (decoder_classification.py: GPT-1 fine-tuning, the last token's state, the
auxiliary LM loss), a subclass with the same methods.

What it does not: multi-label (sigmoid) classification or regression (the head supports a
single regression output; no pipeline wires it yet).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ..heads.classification import POOLINGS, ClassificationHead
from ..training import metrics
from .base import FitConfig, Pipeline, encode_batch, ensure_pooler


@dataclass
class ClassifierOptions:
    pooling: str = "cls"  # cls (BERT's pooler, HF-compatible) | mean | concat (ULMFiT) | last
    max_length: int = 256  # BBC articles average ~450 subwords; 256 keeps the lead, halves the cost
    dropout: float = 0.1  # BERT's dropout before the classifier
    pair: bool = False  # sentence-pair task: inputs are (text, text_b)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if self.max_length < 8:
            raise ValueError("max_length must be >= 8")


class TextClassifier(Pipeline):
    architecture = "BertForSequenceClassification"
    hf_prefix = "classifier."
    hf_problem_type = "single_label_classification"
    dev_metric = "accuracy"
    Options = ClassifierOptions

    @property
    def task(self) -> str:  # type: ignore[override]
        return "pair" if self.options.pair else "classify"

    @classmethod
    def _class_for(cls, body):
        """A causal decoder gets the DecoderClassifier (GPT-1 fine-tuning), an encoder this class."""
        from ..models.decoder import Decoder
        from .decoder_classification import DecoderClassifier

        if isinstance(body, Decoder):
            return DecoderClassifier
        if issubclass(cls, DecoderClassifier):
            raise TypeError(f"DecoderClassifier needs a causal decoder; {type(body).__name__} is not one")
        return cls

    def _build_head(self) -> ClassificationHead:
        if self.options.pooling == "cls":
            ensure_pooler(self.encoder)
        return ClassificationHead(self.encoder.config.hidden_size, len(self.labels),
                                  self.options.pooling, self.options.dropout)

    def _uses_pooler(self) -> bool:
        return self.options.pooling == "cls"

    @staticmethod
    def _pooler_output(out, head: ClassificationHead) -> Tensor | None:
        """BERT's pooler output when the head reads it (pooling="cls"), else None."""
        return out.pooler_output if head.pooling == "cls" else None

    def _step(self, encoder, head, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = encode_batch(encoder, batch)
        logits = head(out.last_hidden_state, batch["attention_mask"], pooled=self._pooler_output(out, head))
        res = {"logits": logits}
        if "labels" in batch:
            res["loss"] = head.loss(logits, batch["labels"])
        return res

    # ------------------------------------------------------------------ features
    def _check_pairs(self, texts: Sequence[str], pairs: Sequence[str] | None) -> None:
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, not one string")
        if self.options.pair and pairs is None:
            raise ValueError("this classifier was trained on sentence pairs: pass pairs=[...]")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")

    def _add_labels(self, feats: list[dict[str, Any]], labels: Sequence[str] | None) -> list[dict[str, Any]]:
        """Each example's "labels": the index of its label in `self.labels` (none without labels)."""
        if labels is None:
            return feats
        if len(labels) != len(feats):
            raise ValueError(f"{len(feats)} texts but {len(labels)} labels")
        index = {lab: i for i, lab in enumerate(self.labels)}
        for k, (f, lab) in enumerate(zip(feats, map(str, labels))):
            if lab not in index:
                raise KeyError(f"example {k}: unknown label {lab!r}; the labels are {self.labels}")
            f["labels"] = index[lab]
        return feats

    def features(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                 labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
        self._check_pairs(texts, pairs)
        encs = self.tokenizer.encode_batch(list(texts), list(pairs) if pairs is not None else None,
                                           padding=None, max_length=self.max_length)
        return self._add_labels([{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in encs], labels)

    # ------------------------------------------------------------------ training
    def fit(self, texts: Sequence[str], labels: Sequence[str], *, pairs: Sequence[str] | None = None,
            dev: tuple | None = None, epochs: float = 4.0,
            lr: float = 1e-4,  # MiniLM-size encoders (384 wide) need more than BERT-base's 2e-5..5e-5
            batch_size: int = 16, linear_probe: bool = False, **fit_options) -> list[dict[str, Any]]:
        """Fine-tune on (texts, labels); dev = (texts, labels) or (texts, pairs, labels) is scored
        every `eval_every` updates and picks the weights by accuracy (early stopping, see
        `FitConfig`). linear_probe: fit the head on the frozen encoder first (LP-FT, see
        `linear_probe`). Other options: see `FitConfig` (freeze, layerwise_lr_decay, schedule,
        gradual_unfreezing, out_dir, progress, seed, min_steps, max_steps, patience, eval_every,
        warmup_ratio, weight_decay)."""
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        fit = FitConfig(epochs=epochs, lr=lr, batch_size=batch_size, **fit_options)
        feats = self.features(texts, pairs, labels)
        if linear_probe:
            self.linear_probe(feats)
        dev_eval = None
        if dev is not None:
            d_texts, d_pairs, d_labels = (dev[0], None, dev[1]) if len(dev) == 2 else dev
            dev_feats = self.features(d_texts, d_pairs, d_labels)
            dev_eval = lambda: self._score(dev_feats, list(d_labels))  # noqa: E731
        return self.fit_features(feats, fit, dev_eval)

    def linear_probe(self, feats: list[dict[str, Any]], C: float = 10.0, max_iter: int = 500) -> float:
        """Set the head's linear layer to the L2-regularised logistic regression of the labels on the
        frozen encoder's pooled features (scikit-learn's objective: 0.5 |W|^2 + C * sum of the cross
        entropies, by L-BFGS); returns its training accuracy. Run before fine-tuning this is LP-FT
        (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
        Out-of-Distribution", sec. 3): fine-tuning then starts from a head that already separates
        the classes instead of a random one whose early gradients disturb the encoder."""
        if self.head.is_regression:
            raise ValueError("linear_probe is for classification heads (num_labels >= 2)")

        def pooled(batch: dict[str, Any]) -> list[Tensor]:
            return list(self._head_features(batch).float())

        with torch.no_grad():
            z = torch.stack(self.predict_batches(feats, pooled)).cpu()  # (N, F)
        y = torch.tensor([f["labels"] for f in feats])  # (N,)
        w = torch.zeros(len(self.labels), z.shape[1], requires_grad=True)  # (K, F)
        proj = self.head.proj
        b = torch.zeros(len(self.labels), requires_grad=proj.bias is not None)  # (K,); 0 without a bias
        opt = torch.optim.LBFGS([w, b] if proj.bias is not None else [w], max_iter=max_iter,
                                line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            loss = C * F.cross_entropy(z @ w.T + b, y, reduction="sum") + 0.5 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            proj.weight.copy_(w.detach().to(proj.weight))
            if proj.bias is not None:
                proj.bias.copy_(b.detach().to(proj.bias))
            return float(((z @ w.T + b).argmax(-1) == y).float().mean())

    def _head_features(self, batch: dict[str, Any]) -> Tensor:
        """(B, F): what the head's linear layer reads for a padded batch (no dropout)."""
        out = encode_batch(self.encoder, batch)
        return self.head.features(out.last_hidden_state, batch["attention_mask"], self._pooler_output(out, self.head))

    # ------------------------------------------------------------------ inference
    def _logits(self, feats: list[dict[str, Any]], batch_size: int = 32) -> Tensor:
        def run(b: dict[str, Any]) -> list[Tensor]:  # no labels: only the logits are wanted
            return list(self.model({k: v for k, v in b.items() if k != "labels"})["logits"].float().cpu())

        rows = self.predict_batches(feats, run, batch_size)
        return torch.stack(rows) if rows else torch.zeros(0, len(self.labels))

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                      batch_size: int = 32) -> np.ndarray:
        """(N, K) class probabilities, columns in the order of `self.labels`."""
        return self._logits(self.features(texts, pairs), batch_size).softmax(-1).numpy()

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                batch_size: int = 32) -> list[dict[str, Any]]:
        probs = self.predict_proba(texts, pairs, batch_size)
        return [{"label": self.labels[int(p.argmax())], "score": float(p.max())} for p in probs]

    def _score(self, feats: list[dict[str, Any]], gold: list[str]) -> dict[str, float]:
        pred = [self.labels[int(i)] for i in self._logits(feats).argmax(-1)]
        gold = [str(g) for g in gold]
        return {"accuracy": metrics.accuracy(gold, pred), "macro_f1": metrics.f1(gold, pred, "macro"),
                "micro_f1": metrics.f1(gold, pred, "micro"), "mcc": metrics.matthews_corrcoef(gold, pred),
                "n": float(len(gold))}

    def evaluate(self, texts: Sequence[str], labels: Sequence[str],
                 pairs: Sequence[str] | None = None) -> dict[str, float]:
        """Accuracy, macro / micro F1 and Matthews correlation; a label the model does not know
        is an error (it could never be predicted)."""
        return self._score(self.features(texts, pairs, labels), list(labels))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "TextClassifier":
        return super().from_pretrained(folder)  # type: ignore[return-value]
