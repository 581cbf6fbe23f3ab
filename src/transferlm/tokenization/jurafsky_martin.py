"""Jurafsky & Martin's BPE: the textbook learner and segmenter over whitespace words.

Jurafsky & Martin, "Speech and Language Processing", 3rd ed., ch. 2 (fig. 2.13): words are
split on whitespace, each ends in an end-of-word symbol `_`, and the learner makes k merges of
the most frequent adjacent pair (`merges.learn_merges` with ``tie_break="first_seen"``, which
reproduces the book's worked example); `segment(word)` applies the learned merges, in the order
learned, to a new word.

What it does not do: bytes, special tokens, offsets or ids (byte-level BPE is bpe.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .corpus import count_whitespace_words
from .merges import learn_merges

END_OF_WORD = "_"  # J&M 3rd ed. ch. 2 write the end-of-word symbol as an underscore


class JurafskyMartinBPE:
    """The textbook BPE: learn k merges over whitespace words ending in `_`, then segment.

    >>> bpe = JurafskyMartinBPE.learn({"low": 5, "lowest": 2, "newer": 6, "wider": 3, "new": 2}, 8)
    >>> bpe.segment("lower")
    ['low', 'er_']

    As in the book's notation, a literal '_' inside a word is the same symbol as the end-of-word
    marker; pick another `END_OF_WORD` if your text has underscores that matter.
    """

    def __init__(self, merges: Sequence[tuple[str, str]]):
        self.merges = [tuple(m) for m in merges]
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def learn(cls, corpus: str | Mapping[str, int], num_merges: int, progress: bool = False) -> "JurafskyMartinBPE":
        """`corpus` is a text (split on whitespace) or a word -> count map."""
        counts = count_whitespace_words(corpus) if isinstance(corpus, str) else corpus
        words = {tuple(w) + (END_OF_WORD,): n for w, n in counts.items() if w}
        initial = sorted({s for w in words for s in w})
        learned = learn_merges(words, initial, num_merges=num_merges, tie_break="first_seen", progress=progress)
        return cls(learned.merges)

    def segment(self, word: str) -> list[str]:
        """J&M's token segmenter: apply each learned merge, in the order learned, to the whole word."""
        hit = self._cache.get(word)
        if hit is not None:
            return list(hit)
        syms = list(word) + [END_OF_WORD]
        for a, b in self.merges:
            if len(syms) == 1:
                break
            if a not in syms:
                continue
            out: list[str] = []
            i = 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        self._cache[word] = syms
        return list(syms)

    def tokenize(self, text: str) -> list[str]:
        return [t for w in text.split() for t in self.segment(w)]


__all__ = ["END_OF_WORD", "JurafskyMartinBPE"]
