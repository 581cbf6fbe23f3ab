"""BERT's basic pre-tokenizer (normalizer + word splitter), with offsets into the original text.

What this file does:

* `BertNormalizer`: the text clean-up of Devlin et al.'s ``BasicTokenizer`` (google-research/bert
  ``tokenization.py``) as Hugging Face ``tokenizers`` implements it (``BertNormalizer`` +
  ``BertPreTokenizer``), which is the behaviour our parity tests pin:
  1. clean text: drop NUL, U+FFFD and control characters (categories Cc, Cf, Co; tab, newline
     and carriage return count as whitespace), turn every whitespace character into a space;
  2. put spaces around CJK ideographs (the code-point blocks BERT lists), so each is a word;
  3. if accents are stripped (default: when lowercasing): canonical decomposition (NFD) and
     removal of non-spacing marks (category Mn); then
  4. lowercase, character by character (``tokenizers`` does accent stripping before lowercasing,
     google-research/bert after; the two agree except on a few exotic characters).
  Then split on whitespace (removed) and punctuation (every character of categories P*, plus all
  ASCII non-alphanumeric printable characters such as ``$``, ``+``, ``^``, as BERT does), each
  punctuation character a word of its own.
* Offsets: each word comes with the character offsets of its characters in the ORIGINAL text,
  although steps 1-4 change lengths (``é`` -> ``e`` + U+0301 -> ``e``; a Hangul syllable ->
  three jamo; a dropped control character). Every normalized character remembers the original
  character it came from (``tokenizers``' alignments), so a sub-word covering normalized
  characters ``[s, e)`` spans original characters ``[align[s], align[e - 1] + 1)``.
* Two paths that give identical results: `split_reference` (a plain loop over characters, the
  one to read) and `split` / `split_columns` (one regex split over plain-ASCII text or stretches,
  the loop only for the whitespace-delimited chunks holding other characters).
  `tests/test_wordpiece.py` checks them against each other and against ``tokenizers``.
* `bytes_to_unicode`: GPT-2's reversible byte <-> printable-character map for byte-level BPE.

What it does not do: no vocabulary, no sub-words (wordpiece.py), no special tokens (encoding.py).
Character classes come from Python's ``unicodedata`` (Unicode 14 on Python 3.11), corrected by a
short table where ``tokenizers``' own (older or newer) Unicode tables differ, so that the two agree
on every code point (tested).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

# Unicode White_Space (PropList.txt), which Rust's char::is_whitespace and so tokenizers use.
# (Python's str.isspace also counts U+001C..U+001F, which are controls for BERT and get dropped.)
WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                       "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


# ---------------------------------------------------------------------------------------------
# Where tokenizers' Unicode tables differ from Python's (Unicode 14.0 on Python 3.11).
#
# tokenizers classifies characters with the `unicode_categories` crate, whose tables predate
# Unicode 9.0, decomposes with tables that predate Unicode 13.0, and lowercases with Rust's
# (Unicode 16+). So on characters assigned or re-classified since, it differs from a plain
# `unicodedata` implementation. The list below makes us agree on every code point;
# tests/test_wordpiece.py::test_every_code_point_matches_tokenizers checks all 1,112,064 of them.

def _expand(ranges: tuple[tuple[int, int], ...]) -> frozenset[int]:
    return frozenset(cp for lo, hi in ranges for cp in range(lo, hi + 1))


# Mn (non-spacing marks) in Unicode 14 that tokenizers does not know as marks: kept, not stripped.
_KEEP_MARKS = _expand((
    (0x7FD, 0x7FD), (0x898, 0x89F), (0x8CA, 0x8E1), (0x9FE, 0x9FE), (0xAFA, 0xAFF), (0xB55, 0xB55),
    (0xC04, 0xC04), (0xC3C, 0xC3C), (0xD00, 0xD00), (0xD3B, 0xD3C), (0xD81, 0xD81), (0xEBA, 0xEBA),
    (0x180F, 0x180F), (0x1885, 0x1886), (0x1ABF, 0x1ACE), (0x1DF6, 0x1DFB), (0xA82C, 0xA82C),
    (0xA8C5, 0xA8C5), (0xA8FF, 0xA8FF), (0xA9BD, 0xA9BD), (0x10D24, 0x10D27), (0x10EAB, 0x10EAC),
    (0x10F46, 0x10F50), (0x10F82, 0x10F85), (0x11070, 0x11070), (0x11073, 0x11074), (0x110C2, 0x110C2),
    (0x111C9, 0x111C9), (0x111CF, 0x111CF), (0x1123E, 0x1123E), (0x1133B, 0x1133B), (0x11438, 0x1143F),
    (0x11442, 0x11444), (0x11446, 0x11446), (0x1145E, 0x1145E), (0x1182F, 0x11837), (0x11839, 0x1183A),
    (0x1193B, 0x1193C), (0x1193E, 0x1193E), (0x11943, 0x11943), (0x119D4, 0x119D7), (0x119DA, 0x119DB),
    (0x119E0, 0x119E0), (0x11A01, 0x11A0A), (0x11A33, 0x11A38), (0x11A3B, 0x11A3E), (0x11A47, 0x11A47),
    (0x11A51, 0x11A56), (0x11A59, 0x11A5B), (0x11A8A, 0x11A96), (0x11A98, 0x11A99), (0x11C30, 0x11C36),
    (0x11C38, 0x11C3D), (0x11C3F, 0x11C3F), (0x11C92, 0x11CA7), (0x11CAA, 0x11CB0), (0x11CB2, 0x11CB3),
    (0x11CB5, 0x11CB6), (0x11D31, 0x11D36), (0x11D3A, 0x11D3A), (0x11D3C, 0x11D3D), (0x11D3F, 0x11D45),
    (0x11D47, 0x11D47), (0x11D90, 0x11D91), (0x11D95, 0x11D95), (0x11D97, 0x11D97), (0x11EF3, 0x11EF4),
    (0x16F4F, 0x16F4F), (0x16FE4, 0x16FE4), (0x1CF00, 0x1CF2D), (0x1CF30, 0x1CF46), (0x1E000, 0x1E006),
    (0x1E008, 0x1E018), (0x1E01B, 0x1E021), (0x1E023, 0x1E024), (0x1E026, 0x1E02A), (0x1E130, 0x1E136),
    (0x1E2AE, 0x1E2AE), (0x1E2EC, 0x1E2EF), (0x1E944, 0x1E94A)))
# A spacing mark (Mc) now that was a non-spacing mark before Unicode 14: stripped by tokenizers.
_EXTRA_MARKS = frozenset({0x1734})
# A character whose canonical decomposition arrived in Unicode 13: not decomposed by tokenizers.
_NO_DECOMPOSITION = frozenset({0x11938})
# Format characters (Cf) in Unicode 14 that tokenizers does not know: kept, not dropped.
_KEEP_FORMAT = _expand(((0x890, 0x891), (0x8E2, 0x8E2), (0x110CD, 0x110CD), (0x13430, 0x13438)))
# Punctuation (P*) in Unicode 14 that tokenizers does not know as punctuation: part of words.
_NOT_PUNCT = _expand((
    (0x61D, 0x61D), (0x9FD, 0x9FD), (0xA76, 0xA76), (0xC77, 0xC77), (0xC84, 0xC84), (0x1B7D, 0x1B7E),
    (0x2E43, 0x2E4F), (0x2E52, 0x2E5D), (0x10EAD, 0x10EAD), (0x10F55, 0x10F59), (0x10F86, 0x10F89),
    (0x1144B, 0x1144F), (0x1145A, 0x1145B), (0x1145D, 0x1145D), (0x11660, 0x1166C), (0x116B9, 0x116B9),
    (0x1183B, 0x1183B), (0x11944, 0x11946), (0x119E2, 0x119E2), (0x11A3F, 0x11A46), (0x11A9A, 0x11A9C),
    (0x11A9E, 0x11AA2), (0x11C41, 0x11C45), (0x11C70, 0x11C71), (0x11EF7, 0x11EF8), (0x11FFF, 0x11FFF),
    (0x12FF1, 0x12FF2), (0x16E97, 0x16E9A), (0x16FE2, 0x16FE2), (0x1E95E, 0x1E95F)))
# Characters that were punctuation (Po) in tokenizers' tables and are not any more.
_EXTRA_PUNCT = frozenset({0x166D, 0x111C9})
# Capital letters unassigned in Unicode 14 that Rust's newer case tables lowercase.
_LOWER_NEWER = {0x1C89: 0x1C8A, 0xA7CB: 0x264, 0xA7CC: 0xA7CD, 0xA7CE: 0xA7CF, 0xA7D2: 0xA7D3, 0xA7D4: 0xA7D5,
                0xA7DA: 0xA7DB, 0xA7DC: 0x19B,
                **{cp: cp + 0x20 for cp in range(0x10D50, 0x10D66)},  # Garay (Unicode 16)
                **{cp: cp + 0x1B for cp in range(0x16EA0, 0x16EB9)}}  # Beria Erfe (Unicode 17)


def is_whitespace(c: str) -> bool:
    return c in WHITESPACE


def is_control(c: str) -> bool:
    """Characters the clean-up drops: Cc, Cf, Co (and lone surrogates), except tab/newline/CR."""
    if c in "\t\n\r":
        return False  # BERT counts these as whitespace
    cat = unicodedata.category(c)
    return cat in ("Cc", "Co", "Cs") or (cat == "Cf" and ord(c) not in _KEEP_FORMAT)


def is_punctuation(c: str) -> bool:
    cp = ord(c)
    # BERT: "We treat all non-letter/number ASCII as punctuation. Characters such as "^", "$",
    # and "`" are not in the Unicode Punctuation class but we treat them as punctuation anyway."
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    if cp in _NOT_PUNCT:
        return False
    return cp in _EXTRA_PUNCT or unicodedata.category(c).startswith("P")


# The CJK Unified Ideographs blocks of google-research/bert `_is_chinese_char` (Hangul, Hiragana
# and Katakana are not among them: those are written with spaces and split like other letters).
# tokenizers starts the fifth block at U+2B920 where BERT has U+2B820; we follow tokenizers, whose
# output the published tokenizer.json files were made with.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(c: str) -> bool:
    cp = ord(c)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


@dataclass(frozen=True)
class BertNormalizer:
    """The options of tokenizers' BertNormalizer (the same names in tokenizer.json)."""

    lowercase: bool = True  # uncased BERT vocabularies (MiniLM, bert-base-uncased) are lowercase
    strip_accents: bool | None = None  # None: strip exactly when lowercasing, as BERT does
    clean_text: bool = True  # BERT always cleans; off only to reproduce exotic tokenizer.json files
    handle_chinese_chars: bool = True  # each CJK ideograph a word (google-research/bert multilingual.md)

    @property
    def strips_accents(self) -> bool:
        return self.lowercase if self.strip_accents is None else self.strip_accents

    def to_hf_json(self) -> dict:
        return {"type": "BertNormalizer", "clean_text": self.clean_text,
                "handle_chinese_chars": self.handle_chinese_chars, "strip_accents": self.strip_accents,
                "lowercase": self.lowercase}

    # -- one character -------------------------------------------------------------------------
    def normalize_char(self, c: str) -> str:
        """What one original character becomes (possibly nothing or several characters)."""
        return _normalize_char(c, self.lowercase, self.strips_accents, self.clean_text, self.handle_chinese_chars)

    def normalize(self, text: str) -> tuple[str, list[int]]:
        """The normalized text and, for each of its characters, the original character's index."""
        out: list[str] = []
        align: list[int] = []
        for i, c in enumerate(text):
            for x in self.normalize_char(c):
                out.append(x)
                align.append(i)
        return "".join(out), align

    # -- words ---------------------------------------------------------------------------------
    def split_ascii(self, text: str) -> tuple[list[str], list[int]] | None:
        """The fastest path, for ASCII text without control characters (where normalizing is at
        most lowercasing, which keeps lengths): (words, their start offsets); None otherwise.

        One regex split in C gives [gap, word, gap, word, ..., gap]; the running sum of the
        lengths gives each word's start."""
        if not self.clean_text or not text.isascii() or _ASCII_CONTROL.search(text):
            return None
        parts = (_ASCII_SPLIT if self.lowercase else _ASCII_SPLIT_CASED).split(text.lower() if self.lowercase else text)
        ends = list(accumulate(map(len, parts)))
        return parts[1::2], ends[0:-1:2]

    def split_reference(self, text: str) -> list[tuple[str, list[int]]]:
        """The readable path: normalize, then split on whitespace and punctuation.

        Returns (word, original index of each of its characters) pairs."""
        norm, align = self.normalize(text)
        words: list[tuple[str, list[int]]] = []
        cur: list[str] = []
        cur_al: list[int] = []

        def flush() -> None:
            if cur:
                words.append(("".join(cur), cur_al.copy()))
                cur.clear()
                cur_al.clear()

        for x, a in zip(norm, align):
            if x in WHITESPACE:
                flush()
            elif is_punctuation(x):
                flush()
                words.append((x, [a]))
            else:
                cur.append(x)
                cur_al.append(a)
        flush()
        return words

    def split(self, text: str) -> list[tuple[str, int, list[int] | None]]:
        """The fast path: (word, start, align) triples. When `align` is None the word's k-th
        character is the original character ``start + k``; otherwise it is ``align[k]``.

        Same words and offsets as `split_reference` (tested)."""
        words, starts, aligns = self.split_columns(text)
        return list(zip(words, starts, aligns or [None] * len(words)))

    def split_columns(self, text: str) -> tuple[list[str], list[int], list[list[int] | None] | None]:
        """`split` as columns: words, starts, aligns (None when no word needs an alignment).

        Plain ASCII stretches (no control characters) go through one regex split; only the
        whitespace-delimited chunks holding another character take the character loop."""
        fast = self.split_ascii(text)
        if fast is not None:
            return fast[0], fast[1], None
        if not self.clean_text:
            ref = self.split_reference(text)
            return [w for w, _ in ref], [al[0] for _, al in ref], [al for _, al in ref]
        words: list[str] = []
        starts: list[int] = []
        aligns: list[list[int] | None] = []
        split_re = _ASCII_SPLIT if self.lowercase else _ASCII_SPLIT_CASED

        def plain(stop: int) -> None:  # text[pos:stop] is printable ASCII and whitespace
            if stop > pos:
                part = text[pos:stop]
                parts = split_re.split(part.lower() if self.lowercase else part)
                ends = accumulate(map(len, parts), initial=pos)
                found = parts[1::2]
                words.extend(found)
                starts.extend(list(ends)[1:-1:2])
                aligns.extend([None] * len(found))

        pos = 0
        for m in _COMPLEX_CHUNK.finditer(text):
            plain(m.start())
            base = m.start()
            for w, al in self.split_reference(m.group()):
                words.append(w)
                starts.append(al[0] + base)
                aligns.append([a + base for a in al])
            pos = m.end()
        plain(len(text))
        return words, starts, aligns


# ASCII control characters BERT drops (tab, newline, CR are whitespace; \x0b \x0c \x1c-\x1f are Cc).
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# On (lowercased) ASCII: a run of letters/digits, or one punctuation character (all the rest but
# whitespace is punctuation for BERT); captured, so that re.split keeps the words between the gaps.
_ASCII_SPLIT = re.compile(r"([a-z0-9]+|[!-/:-@\[-`{-~])")
_ASCII_SPLIT_CASED = re.compile(r"([A-Za-z0-9]+|[!-/:-@\[-`{-~])")
# The characters that become a space in clean-up (the White_Space controls \x0b \x0c \x85 are
# dropped instead).
_SPACE_CLASS = "".join(f"\\u{ord(c):04x}" for c in sorted(WHITESPACE - {"\x0b", "\x0c", "\x85"}))
# A whitespace-delimited chunk holding a character other than printable ASCII: it starts after a
# space (or at the start; the look-behind makes every other start fail at once, so the search is
# linear) and ends at the next space.
_COMPLEX_CHUNK = re.compile(f"(?<![^{_SPACE_CLASS}])[^{_SPACE_CLASS}]*?[^\\t\\n\\r\\x20-\\x7e{_SPACE_CLASS}]"
                            f"[^{_SPACE_CLASS}]*")


@lru_cache(maxsize=1 << 16)
def _normalize_char(c: str, lowercase: bool, strip_accents: bool, clean_text: bool, chinese: bool) -> str:
    cp = ord(c)
    if clean_text:
        if cp == 0 or cp == 0xFFFD or is_control(c):
            return ""
        if c in WHITESPACE:
            return " "
    pad = chinese and is_cjk(c)
    if strip_accents:
        # (after the CJK step, so compatibility ideographs U+F900.. decompose too, as in tokenizers)
        if cp not in _NO_DECOMPOSITION:
            c = unicodedata.normalize("NFD", c)
        c = "".join(x for x in c if not _is_mark(x))
    if lowercase:
        # Character by character (Rust's char::to_lowercase): no final-sigma rule.
        c = "".join(chr(_LOWER_NEWER[ord(x)]) if ord(x) in _LOWER_NEWER else x.lower() for x in c)
    return f" {c} " if pad else c


def _is_mark(x: str) -> bool:
    """A non-spacing mark (Mn), which accent stripping removes."""
    cp = ord(x)
    if cp in _KEEP_MARKS:
        return False
    return cp in _EXTRA_MARKS or unicodedata.category(x) == "Mn"


# ---------------------------------------------------------------------------------------------
# Byte-level BPE (GPT-2, Radford et al. 2019, sec. 2.2): every byte as a printable character.


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters: printable Latin-1 bytes map
    to themselves, the other 68 (controls, space, ...) to U+0100 onwards in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n)
            n += 1
    return dict(sorted(table.items()))


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}
