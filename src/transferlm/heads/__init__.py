"""Fine-tuning heads over hidden states (B, T, C): `forward` -> logits, `loss`, `decode`.

classification.py (pooled softmax / regression), tagging.py (per-token softmax, CRF tagger,
subword alignment, windows), crf.py (linear-chain CRF), spans.py (span enumeration and
classification), qa.py (extractive QA: start / end logits, no-answer, window merging).
"""

from .classification import ClassificationHead
from .crf import CRF, transition_constraints
from .qa import QAHead, QAPrediction, QAWindow, best_spans, predict_answer
from .spans import SpanClassifier, calibrate_threshold, enumerate_spans
from .tagging import CRFTagger, TokenTagger, merge_windows, pool_words, word_scores

__all__ = [
    "ClassificationHead", "CRF", "transition_constraints", "QAHead", "QAPrediction", "QAWindow",
    "best_spans", "predict_answer", "SpanClassifier", "calibrate_threshold", "enumerate_spans",
    "CRFTagger", "TokenTagger", "merge_windows", "pool_words", "word_scores",
]
