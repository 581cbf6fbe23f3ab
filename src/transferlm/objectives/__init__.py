"""Pretraining objectives: masking (masking.py, the one implementation), the MLM collator that
pads and masks (collate.py), and the MLM / NSP / SBO / causal-LM heads and losses (pretraining.py)."""

from .collate import MLMCollator
from .masking import IGNORE_INDEX, MaskingConfig, mask_batch, random_token_weights, span_length_distribution
from .pretraining import (CausalLMModel, MLMEvaluator, MLMHead, NSPHead, PretrainingModel, SpanBoundaryHead,
                          causal_lm_loss)

__all__ = ["IGNORE_INDEX", "MLMCollator", "MaskingConfig", "mask_batch", "random_token_weights", "span_length_distribution",
           "MLMHead", "MLMEvaluator", "NSPHead", "SpanBoundaryHead", "PretrainingModel", "CausalLMModel", "causal_lm_loss"]
