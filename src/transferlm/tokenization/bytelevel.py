"""The byte level of byte-level BPE: text <-> byte symbols, and the pre-split regexes.

Byte-level BPE (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners",
sec. 2.2) runs BPE over the UTF-8 *bytes* of the text, so that no string is ever out of
vocabulary. To keep vocab.json / merges.txt printable, each of the 256 bytes is spelled as one
unicode character (the map is `normalize.bytes_to_unicode`): bytes that are printable latin-1
stand for themselves, the other 68 are moved to U+0100 and above in byte order (so the space
0x20 is spelled 'Ġ', U+0120, and '\\n' is 'Ċ').

Before BPE the text is cut into pre-tokens by a regex, and merges never cross a pre-token
boundary. This file holds the patterns of the vocabularies we load:

- ``gpt2``: GPT-2's pattern, which is also what `tokenizers`' ``ByteLevel(use_regex=True)`` uses.
- ``smollm``: SmolLM / SmolLM2 (and StarCoder). Their tokenizer.json runs ``Digits(individual_digits
  =True)`` and then ByteLevel's GPT-2 regex; llama.cpp names this pre-tokenizer ``smollm`` and
  splits on ``\\p{N}`` before the GPT-2 regex. We fold the two steps into one regex (see
  `SMOLLM_PATTERN`).
- ``llama3``: the Llama-3 pattern (tiktoken's cl100k-style split, digits in groups of up to 3).

Character classes (\\p{L}, \\p{N}, \\s) come from the `regex` module's tables (Unicode 17 for
regex 2026.11); `tokenizers` 0.23's tables stop at Unicode 16, so code points first assigned in
Unicode 17 may split differently there. Everything older agrees (tests/test_bytelevel_bpe.py).

What this file does not do: BPE itself (see bpe.py), special tokens, or any normalisation.
"""

from __future__ import annotations

from functools import lru_cache

import regex

# The map itself lives in normalize.py (one place for it); re-exported here for byte-level users.
from .normalize import bytes_to_unicode, unicode_to_bytes

__all__ = ["bytes_to_unicode", "unicode_to_bytes", "to_byte_symbols", "alphabet", "compile_pattern", "PATTERNS", "GGUF_PRE"]


@lru_cache(maxsize=1)
def _latin1_to_symbol() -> dict[int, str]:
    # A str.translate table: the text's bytes read as latin-1 characters -> byte symbols (only the
    # 68 that move need an entry).
    return {b: c for b, c in bytes_to_unicode().items() if chr(b) != c}


def to_byte_symbols(text: str) -> str:
    """The text's UTF-8 bytes, each spelled as its byte-level character ('hi there' -> 'hiĠthere')."""
    return text.encode("utf-8").decode("latin-1").translate(_latin1_to_symbol())


def alphabet() -> list[str]:
    """The 256 byte symbols, sorted by code point (the order `tokenizers`' trainer gives them ids)."""
    return sorted(bytes_to_unicode().values())


# GPT-2 (encoder.py): contractions, optional space + letters, optional space + digits, optional space
# + other symbols, then whitespace. `\s+(?!\S)` leaves the last space of a run to prefix the next word.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# SmolLM2: every digit is its own pre-token, then the GPT-2 regex runs on the pieces between digits.
# Folded into one regex: ` ?\p{N}+` becomes `\p{N}` (a digit is alone, and a space before it is not
# glued to it), and the end of a piece counts as "not followed by \S", so the whitespace lookahead
# `\s+(?!\S)` becomes `\s+(?![^\s\p{N}])` (a digit after a run of spaces ends the piece: "  1" gives
# "  ", "1", not " ", " ", "1"). No other alternative can match across or look at a digit.
SMOLLM_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""

# Llama 3 (and transformers' GGUF loader for pre = "llama-bpe"): case-insensitive contractions, a
# letter run with one optional leading non-letter, digits in groups of at most three.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

PATTERNS: dict[str, str] = {"gpt2": GPT2_PATTERN, "smollm": SMOLLM_PATTERN, "llama3": LLAMA3_PATTERN}

# GGUF `tokenizer.ggml.pre` values (llama.cpp's names) -> our pattern names.
GGUF_PRE: dict[str, str] = {
    "gpt-2": "gpt2", "gpt2": "gpt2", "default": "gpt2",
    "smollm": "smollm", "starcoder": "smollm",
    "llama3": "llama3", "llama-v3": "llama3", "llama-bpe": "llama3", "smaug-bpe": "llama3",
}


@lru_cache(maxsize=16)
def compile_pattern(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)
