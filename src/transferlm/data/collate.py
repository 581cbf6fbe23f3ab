"""Pretraining collators: examples (dicts of id arrays) -> padded tensors, with dynamic masking.

- `pad_examples`: right-pads input_ids (with pad_id), token_type_ids, special_tokens_mask,
  word_ids and builds attention_mask; scalar fields (next_sentence_label) become a (B,) tensor.
- `MLMCollator`: pads, then masks with objectives/masking.py (token, whole-word or span masking;
  the one masking implementation) using its own torch.Generator. The trainer re-seeds it before
  each micro-batch (`set_seed`), so the masks are a function of the data position (exact resume).
  RoBERTa sec. 4.1's dynamic masking: a new mask each time an example is seen.
- `CausalLMCollator`: pads; labels are the input ids with padding set to -100 (the loss shifts).

Does not: tokenize, or build fine-tuning batches (data/formats.py and the task collators do).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..objectives.masking import MaskingConfig, mask_batch

IGNORE_INDEX = -100  # the label of positions that carry no loss (torch's cross_entropy default)

_PAD_VALUES = {"token_type_ids": 0, "special_tokens_mask": 1, "word_ids": -1, "attention_mask": 0,
               "labels": IGNORE_INDEX}


def pad_examples(examples: Sequence[dict[str, Any]], pad_id: int, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad the sequence fields of `examples` to the longest (rounded up to a multiple)."""
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    lengths = [len(e["input_ids"]) for e in examples]
    T = max(lengths)
    if pad_to_multiple_of:
        T = -(-T // pad_to_multiple_of) * pad_to_multiple_of
    B = len(examples)
    out: dict[str, torch.Tensor] = {}
    for key, value in examples[0].items():
        if np.ndim(value) == 0:
            out[key] = torch.tensor([e[key] for e in examples])
            continue
        fill = pad_id if key == "input_ids" else _PAD_VALUES.get(key, 0)
        arr = np.full((B, T), fill, dtype=np.int64)
        for b, e in enumerate(examples):
            arr[b, :lengths[b]] = np.asarray(e[key], dtype=np.int64)
        out[key] = torch.from_numpy(arr)
    mask = np.zeros((B, T), dtype=np.int64)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    out["attention_mask"] = torch.from_numpy(mask)
    return out


class MLMCollator:
    """Pads and masks a list of examples. Needs the [PAD] and [MASK] ids and the random-token
    weights (`masking.random_token_weights`). Output: input_ids (corrupted), attention_mask,
    labels, and token_type_ids / next_sentence_label / span_start / span_end when they apply."""

    def __init__(self, *, pad_id: int, mask_id: int, random_weights: torch.Tensor,
                 masking: MaskingConfig | None = None, seed: int = 0, pad_to_multiple_of: int | None = 8):
        self.pad_id, self.mask_id, self.random_weights = pad_id, mask_id, random_weights
        self.masking = masking or MaskingConfig()
        self.pad_to_multiple_of = pad_to_multiple_of  # multiples of 8 suit tensor cores
        self.generator = torch.Generator().manual_seed(seed)

    def set_seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_examples(examples, self.pad_id, self.pad_to_multiple_of)
        special = batch.pop("special_tokens_mask", None)
        word_ids = batch.pop("word_ids", None)
        masked = mask_batch(batch["input_ids"], mask_token_id=self.mask_id, random_weights=self.random_weights,
                            generator=self.generator, config=self.masking, special_tokens_mask=special,
                            attention_mask=batch["attention_mask"], word_ids=word_ids)
        batch.update(masked)
        return batch


class CausalLMCollator:
    """Pads; labels = input_ids with -100 on padding (causal_lm_loss shifts them)."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None):
        self.pad_id, self.pad_to_multiple_of = pad_id, pad_to_multiple_of

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_examples([{"input_ids": e["input_ids"]} for e in examples], self.pad_id, self.pad_to_multiple_of)
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        return batch
