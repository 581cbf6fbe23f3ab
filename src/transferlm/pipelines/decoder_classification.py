"""`DecoderClassifier`: GPT-1 fine-tuning of a causal decoder (GPT-2, Llama, SmolLM2) for
single texts and sentence pairs.

    clf = TextClassifier.new("smollm2", labels=[...], aux_lm_weight=0.5)   # returns a DecoderClassifier
    clf.fit(texts, labels, dev=(dev_texts, dev_labels)); clf.predict(texts); clf.save_pretrained(out)

Radford et al. 2018 ("Improving Language Understanding by Generative Pre-Training"):
- input transformations (sec. 3.3, fig. 1): every input is one token sequence,
      classify:  <start> text <extract>
      pair:      <start> text_a <delim> text_b <extract>   (their entailment layout: one ordering)
  GPT-1 learned three new embeddings for these; a pretrained vocabulary here is kept as it is
  (so the folder loads in transformers unchanged), and the tokens are existing special tokens:
  start = the tokenizer's bos (else eos; "" = none), delimiter = its sep (else eos), extract =
  its eos. They are written into the options, so a saved model reads its inputs the same way;
- the head (sec. 3.2, eq. 3): P(y | x) = softmax(W_y h_l^m), h_l^m the final (after the last
  norm) state of the last input token, the extract token, read at the last non-padding position
  of the attention mask; W_y has no bias, as transformers' `score` layer; GPT-1's dropout 0.1 on
  it (sec. 4.1);
- the auxiliary objective (sec. 3.2, eq. 5): L3 = L2 + lambda * L1, L1 the causal LM loss on the
  same inputs (every real token predicted from its prefix; padding ignored), lambda =
  `aux_lm_weight` = 0.5 by default (sec. 4.1); 0 switches it off (and the vocabulary projection
  is then computed for the last position only).

Padding: decoders often have no pad token. Batches are right-padded with `pad_token_id` and an
attention mask; the id is chosen (at `new`) among the tokenizer's pad / unk / bos / eos ids as
the first that differs from the extract token (else 0 or 1). Because every input ends with the
extract token, "the rightmost token that is not the pad id" (how transformers'
GPT2ForSequenceClassification / LlamaForSequenceClassification find the last token, from
config.json's pad_token_id) is the same position as the mask's last one, so a saved folder gives
the same logits in transformers.

The saved folder: config.json (GPT2ForSequenceClassification or LlamaForSequenceClassification,
pad_token_id, id2label / label2id), model.safetensors (the decoder under `transformer.` /
`model.`, the head as `score.weight`; an untied LM head stays as `lm_head.weight`, which
transformers' classification classes ignore and our reload needs to train further), the
tokenizer files and transferlm_pipeline.json.

What it does not: add new token embeddings (GPT-1's learned start / delimiter / extract
vectors), GPT-1's two-ordering sum for symmetric similarity tasks, multiple choice, or LP-FT's
probe on the LM's own features beyond `linear_probe` (inherited, bias-free).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..data.collate import IGNORE_INDEX
from ..heads.classification import ClassificationHead
from ..models import checkpoint
from ..models.decoder import Decoder
from ..objectives.pretraining import causal_lm_loss
from .base import DECODER_TYPES
from .classification import TextClassifier

# transformers' sequence-classification class of each decoder family (the layout of our folders)
HF_ARCHITECTURE = {"gpt2": "GPT2ForSequenceClassification", "llama": "LlamaForSequenceClassification"}


@dataclass
class DecoderClassifierOptions:
    max_length: int = 256  # tokens per input, the three special tokens included
    dropout: float = 0.1  # GPT-1 sec. 4.1: dropout 0.1 on the classifier
    pair: bool = False  # sentence-pair task: <start> A <delim> B <extract>
    aux_lm_weight: float = 0.5  # GPT-1 sec. 3.2 / 4.1: lambda in L3 = L2 + lambda * L1; 0 = off
    pooling: str = "last"  # the last real token's state (GPT-1); the only choice for a decoder
    start_token: str = ""  # filled by `new` from the tokenizer (see the module docstring); "" = none
    delimiter_token: str = ""
    extract_token: str = ""
    pad_token_id: int = -1  # filled by `new`: never the extract token's id

    def __post_init__(self) -> None:
        if self.pooling != "last":
            raise ValueError(f"a decoder classifier reads the last token's state (pooling='last'), "
                             f"not pooling={self.pooling!r}")
        if self.max_length < 8:
            raise ValueError("max_length must be >= 8")
        if self.aux_lm_weight < 0:
            raise ValueError(f"aux_lm_weight (lambda) must be >= 0, not {self.aux_lm_weight}")


def default_special_tokens(tokenizer, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with start / delimiter / extract tokens and the pad id filled in from `tokenizer`."""
    roles = dict(getattr(tokenizer, "special_tokens", {}) or {})
    out = dict(options)
    eos = roles.get("eos")
    if not out.get("extract_token"):
        if eos is None:
            raise ValueError(f"the tokenizer has no eos token to end inputs with (its special tokens: "
                             f"{roles or 'none'}); give extract_token=...")
        out["extract_token"] = eos
    if "start_token" not in out:
        out["start_token"] = roles.get("bos") or eos or ""
    if not out.get("delimiter_token"):
        out["delimiter_token"] = roles.get("sep") or out["extract_token"]
    for key in ("start_token", "delimiter_token", "extract_token"):
        if out[key] and tokenizer.token_to_id(out[key]) is None:
            raise ValueError(f"{key}={out[key]!r} is not in the tokenizer's vocabulary")
    if out.get("pad_token_id", -1) in (-1, None):
        extract = tokenizer.token_to_id(out["extract_token"])
        ids = [tokenizer.token_to_id(roles[r]) for r in ("pad", "unk", "bos", "eos") if r in roles]
        out["pad_token_id"] = next(i for i in [*ids, 0, 1] if i is not None and i != extract)
    return out


class DecoderClassifier(TextClassifier):
    """TextClassifier on a causal decoder (GPT-1 fine-tuning); see the module docstring."""

    hf_prefix = "score."
    Options = DecoderClassifierOptions

    def __init__(self, encoder: Decoder, tokenizer, labels: Sequence[str], options: DecoderClassifierOptions):
        if not isinstance(encoder, Decoder) or encoder.config.model_type not in DECODER_TYPES:
            raise TypeError(f"DecoderClassifier needs a GPT-2 or Llama Decoder, not {type(encoder).__name__}")
        extract = tokenizer.token_to_id(options.extract_token) if options.extract_token else None
        if extract is None or options.pad_token_id == extract or options.pad_token_id < 0:
            raise ValueError(f"options need an extract token in the vocabulary and a pad id that differs "
                             f"from it (got {options.extract_token!r}, pad {options.pad_token_id}); "
                             f"build with TextClassifier.new")
        super().__init__(encoder, tokenizer, labels, options)

    @property
    def decoder(self) -> Decoder:
        return self.encoder  # type: ignore[return-value]

    @property
    def architecture(self) -> str:  # type: ignore[override]
        return HF_ARCHITECTURE[self.decoder.config.model_type]

    @property
    def pad_id(self) -> int:
        return self.options.pad_token_id

    @classmethod
    def _make_options(cls, tokenizer, options: dict[str, Any]) -> DecoderClassifierOptions:
        return cls.Options(**default_special_tokens(tokenizer, options))

    def _build_head(self) -> ClassificationHead:
        head = ClassificationHead(self.decoder.config.hidden_size, len(self.labels), "last",
                                  self.options.dropout, bias=False)
        nn.init.normal_(head.proj.weight, std=self.decoder.config.initializer_range)  # as HF's score init
        return head

    def _uses_pooler(self) -> bool:
        return False

    def _step(self, decoder, head, batch: dict[str, Any]) -> dict[str, Tensor]:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        lam = self.options.aux_lm_weight
        with_lm = "labels" in batch and lam > 0
        out = decoder(ids, attention_mask=mask, logits_to_keep=0 if with_lm else 1)
        logits = head(out.last_hidden_state, mask)  # (B, K): W_y h_l^m at the last real token
        res: dict[str, Tensor] = {"logits": logits}
        if "labels" in batch:
            task = head.loss(logits, batch["labels"])  # L2 (GPT-1 eq. 4)
            res["task_loss"] = task
            if with_lm:
                lm = causal_lm_loss(out.logits, ids.masked_fill(mask == 0, IGNORE_INDEX))  # L1 (eq. 1)
                res["lm_loss"] = lm
                res["loss"] = task + lam * lm  # L3 = L2 + lambda * L1 (GPT-1 eq. 5)
            else:
                res["loss"] = task
        return res

    def _head_features(self, batch: dict[str, Any]) -> Tensor:
        out = self.decoder(batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=1)
        return self.head.features(out.last_hidden_state, batch["attention_mask"])

    # ------------------------------------------------------------------ features
    def _special_id(self, token: str) -> list[int]:
        return [self.tokenizer.token_to_id(token)] if token else []

    def features(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                 labels: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """<start> A [<delim> B] <extract> ids (GPT-1 fig. 1), the texts truncated to fit max_length."""
        self._check_pairs(texts, pairs)
        start = self._special_id(self.options.start_token)
        delim = self._special_id(self.options.delimiter_token) if pairs is not None else []
        extract = self._special_id(self.options.extract_token)
        room = self.max_length - len(start) - len(delim) - len(extract)
        encs = self.tokenizer.encode_batch(list(texts), list(pairs) if pairs is not None else None,
                                           add_special_tokens=False, max_length=room)
        feats = []
        for e in encs:
            a = [i for i, s in zip(e.ids, e.sequence_ids) if s == 0]
            b = [i for i, s in zip(e.ids, e.sequence_ids) if s == 1]
            feats.append({"input_ids": start + a + (delim + b if pairs is not None else []) + extract})
        return self._add_labels(feats, labels)

    # ------------------------------------------------------------------ saving and loading
    def _save_body(self, folder: Path) -> None:
        """The decoder in transformers' *ForCausalLM layout (the body under the same prefix as in
        *ForSequenceClassification), then `score.weight` added and config.json switched to the
        classification architecture. The head's HF names are known here, not in models/: the
        decoder is saved as what it is, and the pipeline adds its head."""
        checkpoint.save_model(self.decoder, folder)
        tensors, _ = checkpoint.read_tensors(folder)
        tensors.update({k: v.detach().contiguous().clone() for k, v in self._head_state().items()})
        cfg = checkpoint.read_config(folder)
        cfg["architectures"] = [self.architecture]
        cfg["pad_token_id"] = self.pad_id  # transformers finds the last token from it
        checkpoint.write_folder(folder, cfg, tensors)

    @classmethod
    def _load_body(cls, folder: Path) -> Decoder:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decoder = Decoder.from_pretrained(folder)
        for w in caught:  # the head's score.weight is ours to read (base.load does), not the decoder's
            if "tensors not used by the model, e.g. ['score.weight']" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return decoder
