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

import re
from functools import lru_cache

import regex

# The map itself lives in normalize.py (one place for it); re-exported here for byte-level users.
from .normalize import bytes_to_unicode, unicode_to_bytes

__all__ = ["bytes_to_unicode", "unicode_to_bytes", "to_byte_symbols", "symbol_table", "alphabet", "compile_pattern",
           "ascii_pattern", "PATTERNS", "GGUF_PRE"]


@lru_cache(maxsize=1)
def symbol_table() -> dict[int, str]:
    """A str.translate table: the text's bytes read as latin-1 characters -> byte symbols (only the
    68 that move need an entry). An ASCII text is its own bytes, so it translates directly."""
    return {b: c for b, c in bytes_to_unicode().items() if chr(b) != c}


def to_byte_symbols(text: str) -> str:
    """The text's UTF-8 bytes, each spelled as its byte-level character ('hi there' -> 'hiĠthere')."""
    return text.encode("utf-8").decode("latin-1").translate(symbol_table())


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


# The classes of the shipped patterns restricted to ASCII, as the `regex` module reads them there:
# \p{L} is the 52 letters, \p{N} the 10 digits, \s the six characters below (Unicode White_Space:
# not the separators 0x1c-0x1f, which the standard `re` module's \s would also match).
_ASCII_WS = r"\t\n\x0b\x0c\r "
_ASCII_IN_CLASS = {r"\p{L}": "A-Za-z", r"\p{N}": "0-9", r"\s": _ASCII_WS}
_ASCII_ALONE = {r"\p{L}": "[A-Za-z]", r"\p{N}": "[0-9]", r"\s": f"[{_ASCII_WS}]", r"\S": f"[^{_ASCII_WS}]"}


@lru_cache(maxsize=16)
def ascii_pattern(pattern: str) -> re.Pattern | None:
    """The twin of a shipped pattern for ASCII-only text: the same matches there, compiled by the
    standard `re` module (about twice as fast as `regex` on such text; most real text is ASCII).
    None for any other pattern (a custom one keeps `regex` on every text).
    tests/test_bytelevel_bpe.py checks the twins against the originals on random ASCII text."""
    if pattern not in PATTERNS.values():
        return None
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        esc = next((e for e in (_ASCII_IN_CLASS if in_class else _ASCII_ALONE) if pattern.startswith(e, i)), None)
        if esc is not None:
            out.append((_ASCII_IN_CLASS if in_class else _ASCII_ALONE)[esc])
            i += len(esc)
            continue
        if c == "\\":  # any other escape (\r, \n) is the same in both modules
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        out.append(c)
        i += 1
    return re.compile("".join(out))
