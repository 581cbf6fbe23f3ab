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

For text below U+0100 (ASCII and latin-1, most English text) `latin1_pattern` gives each shipped
pattern a twin for the standard `re` module, with the classes spelled out as `regex` reads them
there: the same pieces, faster (bpe.py uses it; tests/test_bytelevel_bpe.py checks the twins).

What this file does not do: BPE itself (see bpe.py), special tokens, or any normalisation.
"""

from __future__ import annotations

import re
from functools import lru_cache

import regex

# The map itself lives in normalize.py (one place for it); re-exported here for byte-level users.
from .normalize import bytes_to_unicode, unicode_to_bytes

__all__ = ["bytes_to_unicode", "unicode_to_bytes", "to_byte_symbols", "symbol_table", "alphabet", "compile_pattern",
           "latin1_pattern", "PATTERNS", "GGUF_PRE"]


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


@lru_cache(maxsize=1)
def _latin1_classes() -> tuple[dict[str, str], dict[str, str]]:
    """The classes of the shipped patterns restricted to U+0000..U+00FF, as the `regex` module
    reads them there (\\s is Unicode White_Space: not the separators 0x1c-0x1f that the standard
    `re` module's \\s also matches; \\p{N} has the superscripts and fractions, \\p{L} ª µ º ...):
    (the set inside a bracket, the class standing alone), taken from `regex` itself."""
    inside, alone = {}, {}
    for cls in (r"\p{L}", r"\p{N}", r"\s"):
        runs: list[list[int]] = []  # [first, last] code points of each run of members
        for i in range(256):
            if regex.match(cls, chr(i)):
                if runs and runs[-1][1] == i - 1:
                    runs[-1][1] = i
                else:
                    runs.append([i, i])
        body = "".join(f"\\x{a:02x}" if a == b else f"\\x{a:02x}-\\x{b:02x}" for a, b in runs)
        inside[cls], alone[cls] = body, f"[{body}]"
    space = inside[r"\s"]
    alone[r"\S"] = f"[^{space}]"
    return inside, alone


@lru_cache(maxsize=16)
def latin1_pattern(pattern: str) -> re.Pattern | None:
    """The twin of a shipped pattern for text whose characters are all below U+0100 (ASCII and
    latin-1: most real English text): the same matches there, compiled by the standard `re`
    module, which runs these patterns faster than `regex`. None for any other pattern (a custom
    one keeps `regex` on every text). tests/test_bytelevel_bpe.py checks the twins against the
    originals on random latin-1 text."""
    if pattern not in PATTERNS.values():
        return None
    inside, alone = _latin1_classes()
    out, i, in_class = [], 0, False
    while i < len(pattern):
        table = inside if in_class else alone
        esc = next((e for e in table if pattern.startswith(e, i)), None)
        if esc is not None:
            out.append(table[esc])
            i += len(esc)
            continue
        c = pattern[i]
        if c == "\\":  # any other escape (\\r, \\n) means the same in both modules
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
