"""Embeddings: contextual vectors read out of pretrained encoders (`contextual.py`).

Static word vectors are imported from their own modules: `static.py` (the public face: `Vectors`,
`load_vectors`, `StaticEmbedding`, the bag-of-vectors classifier), `vectors.py` (file formats, the
GloVe asset), `word2vec.py`, `glove.py` (training) and `evaluate.py` (similarity and analogies).
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
