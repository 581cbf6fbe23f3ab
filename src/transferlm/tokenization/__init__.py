"""Tokenizers: text -> token ids with offsets, and back; nothing here imports torch.

- `Encoding`, `Tokenizer` (encoding.py): the output record and the base class that does special
  tokens, truncation, overflow windows, batching and padding for every tokenizer; `Template`
  (template.py): the special-token templates; added.py: added tokens matched whole in the text.
- `BertNormalizer` (normalize.py): BERT's basic pre-tokenizer with offsets into the original text.
- `WordPieceTokenizer`, `learn_wordpiece` (wordpiece.py): BERT's segmenter and the WordPiece learner.
- `ByteLevelBPETokenizer` (bpe.py): byte-level BPE (GPT-2, SmolLM2); imported on first use.
  bytelevel.py: byte symbols and pre-split regexes; jurafsky_martin.py: the textbook BPE.
- merges.py: the one merge learner (BPE and WordPiece); corpus.py: training text and word counts.
- `load_tokenizer` (io/): the right tokenizer for a folder, tokenizer.json, vocab.txt, or
  vocab.json + merges.txt; io/ holds the file formats of every tokenizer (GGUF included).
"""

from __future__ import annotations

from .encoding import Encoding, Tokenizer
from .io import load_tokenizer
from .normalize import BertNormalizer
from .template import Template
from .wordpiece import WordPieceTokenizer, learn_wordpiece


def __getattr__(name: str):
    # bpe.py is imported only when asked for, so WordPiece users never pay for (or trip on) it.
    if name == "ByteLevelBPETokenizer":
        from .bpe import ByteLevelBPETokenizer

        return ByteLevelBPETokenizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BertNormalizer", "ByteLevelBPETokenizer", "Encoding", "Template", "Tokenizer", "WordPieceTokenizer",
           "learn_wordpiece", "load_tokenizer"]
