"""Added tokens: strings matched whole in the raw text before any segmentation, for every tokenizer.

`tokenizers` keeps an "added vocabulary" (special tokens such as ``[SEP]`` or ``<|im_end|>``,
and tokens added by the user) that is cut out of the text first, longest match at the leftmost
position, before normalization and pre-tokenization; the stretches between them are tokenized as
usual. This file is that step, once for WordPiece and byte-level BPE:

* `AddedToken`: content, id, and whether it is special (decode drops special ones on request);
* `added_tokens_pattern(tokens)`: the regex that finds them (leftmost, longest);
* `encode_with_added_tokens(text, pattern, encode_text, token_to_id)`: the encoding of a text
  with each added token kept whole and `encode_text` run on the stretches between, offsets and
  word ids continued across stretches (an added token counts as one word, as in tokenizers).

What it does not do: the ``lstrip`` / ``rstrip`` / ``single_word`` / ``normalized`` options of
tokenizers' AddedToken (the readers in io/ reject them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .encoding import Encoding


@dataclass(frozen=True)
class AddedToken:
    content: str
    id: int
    special: bool = True  # special tokens are dropped by decode(skip_special_tokens=True)


def added_tokens_pattern(tokens: Iterable[str]) -> "re.Pattern | None":
    """A regex that finds any of `tokens`, the longest at the leftmost position (tokenizers'
    Aho-Corasick LeftmostLongest: Python tries alternatives in order, so longest first)."""
    toks = sorted(set(tokens), key=lambda t: (-len(t), t))
    return re.compile("|".join(re.escape(t) for t in toks)) if toks else None


def encode_with_added_tokens(text: str, pattern: "re.Pattern | None",
                             encode_text: Callable[[str], tuple[Encoding, int]],
                             token_to_id: Callable[[str], int]) -> Encoding:
    """`encode_text` on the stretches between added tokens, each added token kept whole.

    `encode_text(stretch)` returns the stretch's Encoding (offsets into the stretch, word ids
    from 0) and its number of words (pre-tokens, also those that gave no token). Word ids continue
    across stretches and an added token counts as one word, as in tokenizers."""
    if pattern is None or not text or pattern.search(text) is None:
        return encode_text(text)[0]
    out = Encoding.empty()
    pos = 0
    next_word = 0

    def add_text(start: int, stop: int) -> None:
        nonlocal next_word
        if start == stop:
            return
        enc, n_words = encode_text(text[start:stop])
        if next_word:
            enc.word_ids = [None if w is None else w + next_word for w in enc.word_ids]
        next_word += n_words
        if start:
            enc.offsets = [(s + start, e + start) for s, e in enc.offsets]
        out._extend(enc)

    for m in pattern.finditer(text):
        add_text(pos, m.start())
        tok = m.group()
        out._extend(Encoding.from_tokens([token_to_id(tok)], [tok], [m.span()], [next_word]))
        next_word += 1
        pos = m.end()
    add_text(pos, len(text))
    return out


__all__ = ["AddedToken", "added_tokens_pattern", "encode_with_added_tokens"]
