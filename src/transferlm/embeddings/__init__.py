"""Embeddings: contextual vectors read out of pretrained encoders (`contextual.py`).

Static word vectors (word2vec, GloVe, vector files) live in `static.py`, imported from there.
"""

from .contextual import (
    LAYER_PRESETS,
    TokenVectors,
    WordVectors,
    cls_pool,
    embed,
    embed_tokens,
    embed_words,
    l2_normalize,
    load,
    mean_pool,
    mix_layers,
    parse_layers,
    pool_words,
    resolve_layers,
    sentence_transformers_defaults,
)

__all__ = [
    "LAYER_PRESETS", "TokenVectors", "WordVectors", "cls_pool", "embed", "embed_tokens",
    "embed_words", "l2_normalize", "load", "mean_pool", "mix_layers", "parse_layers", "pool_words",
    "resolve_layers", "sentence_transformers_defaults",
]
