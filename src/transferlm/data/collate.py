"""Padding collators: examples (dicts of id arrays) -> padded tensors; `IGNORE_INDEX` (-100).

- `pad_examples`: right-pads input_ids (with pad_id), token_type_ids, special_tokens_mask,
  word_ids and builds attention_mask; scalar fields (next_sentence_label) become a (B,) tensor.
- `CausalLMCollator`: pads; labels are the input ids with padding set to -100 (the loss shifts).

Does not: tokenize, mask (objectives/collate.py's `MLMCollator` pads with `pad_examples`, then masks),
or build fine-tuning batches (data/finetune_collate.py does).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

IGNORE_INDEX = -100  # the label value torch's cross_entropy ignores (the one definition in the package)

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


class CausalLMCollator:
    """Pads; labels = input_ids with -100 on padding (causal_lm_loss shifts them)."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int | None = None):
        self.pad_id, self.pad_to_multiple_of = pad_id, pad_to_multiple_of

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_examples([{"input_ids": e["input_ids"]} for e in examples], self.pad_id, self.pad_to_multiple_of)
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        return batch
