"""`MLMCollator`: pretraining batches for masked language modelling, padded and masked.

Pads with data/collate.py's `pad_examples`, then masks with masking.py (token, whole-word or span
masking; the one masking implementation) using its own torch.Generator. The trainer re-seeds it
before each micro-batch (`set_seed`), so the masks are a function of the data position (exact
resume). RoBERTa sec. 4.1's dynamic masking: a new mask each time an example is seen.

Does not: pad anything itself, or build causal-LM batches (data/collate.py's `CausalLMCollator`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..data.collate import pad_examples
from .masking import MaskingConfig, mask_batch


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
