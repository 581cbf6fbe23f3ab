"""Byte-pair encoding: one merge learner, the Jurafsky & Martin segmenter, and byte-level BPE.

What this file does:

* `learn_merges`: the BPE learner (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
  with Subword Units", sec. 3.2; Jurafsky & Martin, "Speech and Language Processing", 3rd ed.,
  ch. 2, fig. 2.13). It keeps pair counts *incrementally*: an index from each pair to the words
  that contain it and a max-heap of pairs by count, so a merge touches only the words holding
  the pair, and stale heap entries are re-pushed with their true count when they surface
  ("lazy deletion"). The same function serves the J&M flavour and the byte-level trainer.
  Tie-break among pairs of equal count (deterministic, and chosen per flavour):
  - ``"first_seen"`` (J&M): the pair seen first wins. Pairs are numbered when first seen: the
    initial pairs scanning the words in the order given (a text corpus: order of first
    occurrence) and left to right in each word; a pair created by a merge gets the next number
    when it appears (words in index order, left to right). This reproduces J&M's worked example
    (``e r`` before ``r _``, ``n e`` before ``e w``, ``l o`` before ``o w``).
  - ``"ids"`` (byte-level): the smallest (left id, right id) wins, where ids number the initial
    symbols in code-point order and each new symbol gets the next id. This is `tokenizers`'
    BpeTrainer rule, so our byte-level trainer reproduces its merges.
* `JurafskyMartinBPE`: words split on whitespace, an end-of-word symbol `_` after each, k merges;
  `segment(word)` applies the learned merges in the order they were learned.
* `ByteLevelBPETokenizer`: GPT-2 / Llama-3 / SmolLM2 byte-level BPE with ranked merges, added
  and special tokens (matched whole before pre-splitting), character offsets into the input
  (as `tokenizers` reports them with trim_offsets=False), a cache of pre-token encodings, exact
  `decode(encode(x)) == x`, and readers/writers for vocab.json + merges.txt, Hugging Face
  tokenizer.json, GGUF metadata; plus `train` (the byte-level trainer).

What it does not do: BPE dropout, byte fallback / unk tokens (a byte the vocabulary has no token
for is left out, as `tokenizers` does, with a warning and a count in `dropped_bytes`; SmolLM2's
vocabulary lacks 21 of the 256 bytes, e.g. 0x04 and the lead byte 0xf1), normalizers, `add_prefix_space`,
added tokens with lstrip / rstrip / single_word (rejected when reading); the special-token
templates, truncation, windows, batching and padding are the `Tokenizer` base class's
(encoding.py).
"""

from __future__ import annotations

import heapq
import json
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import regex

from .bytelevel import GGUF_PRE, PATTERNS, alphabet, bytes_to_unicode, compile_pattern, to_byte_symbols
from ..fileio import atomic_write_bytes
from .encoding import Encoding, Template, Tokenizer


# =============================================================================================
# The learner, shared by both flavours
# =============================================================================================


@dataclass
class LearnedMerges:
    vocab: list[str]  # id -> symbol: the initial symbols, then one per new merged string
    merges: list[tuple[str, str]]  # in the order learned (rank 0 first)


def learn_merges(
    words: Mapping[tuple[str, ...], int],
    initial_vocab: Sequence[str],
    *,
    num_merges: int | None = None,
    vocab_size: int | None = None,
    min_frequency: int = 0,
    tie_break: str = "ids",
    progress: bool = False,
) -> LearnedMerges:
    """Learn BPE merges from word counts.

    words: each word as its sequence of initial symbols (characters, or byte symbols) -> count.
    initial_vocab: id order of the starting symbols (special tokens first if any, then the
        alphabet); every symbol of every word must be in it.
    Stops after `num_merges` merges, when the vocabulary reaches `vocab_size`, when no pair is
    left, or when the best pair occurs fewer than max(1, min_frequency) times.
    tie_break: "ids" or "first_seen" (see the module docstring).
    """
    if tie_break not in ("ids", "first_seen"):
        raise ValueError(f"tie_break must be 'ids' or 'first_seen', not {tie_break!r}")
    first_seen = tie_break == "first_seen"
    serial: dict[tuple[int, int], int] = {}  # pair -> number, in order first seen ("first_seen")
    if num_merges is None and vocab_size is None:
        raise ValueError("learn_merges needs num_merges or vocab_size to know when to stop")
    vocab = list(initial_vocab)
    token_to_id = {t: i for i, t in enumerate(vocab)}
    if len(token_to_id) != len(vocab):
        raise ValueError("learn_merges: initial_vocab has duplicate symbols")

    seqs: list[list[int]] = []
    counts: list[int] = []
    for word, count in words.items():
        try:
            seqs.append([token_to_id[s] for s in word])
        except KeyError as e:
            raise ValueError(f"learn_merges: symbol {e.args[0]!r} of word {word!r} is not in initial_vocab") from None
        counts.append(int(count))

    # Pair counts over all adjacent windows, and where each pair occurs.
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    where: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, w in enumerate(seqs):
        c = counts[wi]
        for p in zip(w, w[1:]):
            pair_counts[p] += c
            where[p].add(wi)
            if first_seen and p not in serial:
                serial[p] = len(serial)

    def key(p: tuple[int, int]) -> tuple[int, int]:
        return (serial[p], 0) if first_seen else p

    # Max-heap by count, then the smallest tie-break key; `seq` keeps entries of one pair FIFO.
    # An entry's count may be stale (higher than the truth): checked when it reaches the top.
    seq = 0
    heap: list[tuple[int, int, int, int, tuple[int, int], set[int]]] = []
    for p, pos in where.items():
        if pair_counts[p] > 0:
            heap.append((-pair_counts[p], *key(p), seq, p, pos))
            seq += 1
    heapq.heapify(heap)
    del where

    bar = None
    if progress:
        from tqdm import tqdm

        total = num_merges if num_merges is not None else max(0, vocab_size - len(vocab))
        bar = tqdm(total=total, desc="BPE merges", unit="merge")

    merges: list[tuple[int, int]] = []
    while heap:
        if vocab_size is not None and len(token_to_id) >= vocab_size:
            break
        if num_merges is not None and len(merges) >= num_merges:
            break
        neg, k1, k2, _, (a, b), pos = heapq.heappop(heap)
        true_count = pair_counts[(a, b)]
        if -neg != true_count:  # stale: put it back with its true count
            heapq.heappush(heap, (-true_count, k1, k2, seq, (a, b), pos))
            seq += 1
            continue
        if true_count < 1 or true_count < min_frequency:
            break
        new_tok = vocab[a] + vocab[b]
        new = token_to_id.get(new_tok)
        if new is None:  # the same string can come from two different pairs ('ab'+'c', 'a'+'bc')
            new = len(vocab)
            vocab.append(new_tok)
            token_to_id[new_tok] = new
        merges.append((a, b))

        # Merge every occurrence, left to right, in each word that held the pair, and update the
        # counts of the neighbouring pairs: (prev, a) and (b, next) lose, (prev, new), (new, next) gain.
        grown: dict[tuple[int, int], set[int]] = {}
        for wi in sorted(pos) if first_seen else pos:
            w = seqs[wi]
            if a not in w:
                continue
            c = counts[wi]
            n = len(w)
            out: list[int] = []
            i = 0
            while i < n:
                x = w[i]
                if x == a and i + 1 < n and w[i + 1] == b:
                    if out:
                        prev = out[-1]
                        pair_counts[(prev, a)] -= c
                        pair_counts[(prev, new)] += c
                        grown.setdefault((prev, new), set()).add(wi)
                        if first_seen and (prev, new) not in serial:
                            serial[(prev, new)] = len(serial)
                    if i + 2 < n:
                        nxt = w[i + 2]
                        pair_counts[(b, nxt)] -= c
                        pair_counts[(new, nxt)] += c
                        grown.setdefault((new, nxt), set()).add(wi)
                        if first_seen and (new, nxt) not in serial:
                            serial[(new, nxt)] = len(serial)
                    out.append(new)
                    i += 2
                else:
                    out.append(x)
                    i += 1
            seqs[wi] = out
        for p, ws in grown.items():
            cnt = pair_counts[p]
            if cnt > 0:
                heapq.heappush(heap, (-cnt, *key(p), seq, p, ws))
                seq += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return LearnedMerges(vocab=vocab, merges=[(vocab[a], vocab[b]) for a, b in merges])


# =============================================================================================
# Jurafsky & Martin BPE
# =============================================================================================

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
        counts: Mapping[str, int]
        if isinstance(corpus, str):
            c: dict[str, int] = defaultdict(int)
            for w in corpus.split():
                c[w] += 1
            counts = c
        else:
            counts = corpus
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


# =============================================================================================
# Files: errors that name the file and line; atomic writes
# =============================================================================================


class BPEFileError(ValueError):
    """A vocabulary or merges file is malformed; the message names the file and line."""


def _read_utf8_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    lines = data.split(b"\n")
    out = []
    for lineno, raw in enumerate(lines, 1):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise BPEFileError(
                f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
            ) from None
    return out


def _read_json(path: Path):
    text = "\n".join(_read_utf8_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BPEFileError(f"{path}:{e.lineno}: invalid JSON ({e.msg}, column {e.colno})") from None


def read_vocab_json(path: str | os.PathLike) -> dict[str, int]:
    path = Path(path)
    obj = _read_json(path)
    if not isinstance(obj, dict):
        raise BPEFileError(f"{path}:1: expected a JSON object mapping token -> id, got {type(obj).__name__}")
    for k, v in obj.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise BPEFileError(f"{path}: token {k!r} has id {v!r}; expected a non-negative integer")
    if len(set(obj.values())) != len(obj):
        raise BPEFileError(f"{path}: two tokens share one id")
    return obj


def read_merges_txt(path: str | os.PathLike, vocab: Mapping[str, int]) -> list[tuple[str, str]]:
    """GPT-2's merges.txt: an optional '#version' line, then 'left right' per line, best first."""
    path = Path(path)
    merges = []
    for lineno, line in enumerate(_read_utf8_lines(path), 1):
        line = line.rstrip("\r")
        if lineno == 1 and line.startswith("#version"):
            continue
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise BPEFileError(f"{path}:{lineno}: expected two symbols separated by one space, got {line!r}")
        a, b = parts
        for s in (a, b, a + b):
            if s not in vocab:
                raise BPEFileError(f"{path}:{lineno}: merge {a!r} {b!r} names {s!r}, which is not in the vocabulary")
        merges.append((a, b))
    return merges


# =============================================================================================
# Byte-level BPE
# =============================================================================================


@dataclass(frozen=True)
class AddedToken:
    content: str
    id: int
    special: bool = True  # special tokens are dropped by decode(skip_special_tokens=True)


_ROLES = ("bos", "eos", "pad", "unk")


class ByteLevelBPETokenizer(Tokenizer):
    """Byte-level BPE (GPT-2, Llama-3, SmolLM2) over a vocabulary and ranked merges.

    Encoding a text: (1) cut out the added tokens (longest match at the leftmost position, as
    `tokenizers`' AddedVocabulary does), (2) pre-split the rest with the model's regex, (3) spell
    each piece's UTF-8 bytes as byte symbols and (4) merge, lowest-ranked pair first (GPT-2's
    `bpe()`), until no ranked pair is left.
    """

    cache_size = 100_000  # distinct pre-tokens kept; cleared when full (real text repeats a lot)

    def __init__(
        self,
        vocab: Mapping[str, int],
        merges: Sequence[tuple[str, str]],
        *,
        pattern: str = "gpt2",
        added_tokens: Sequence[AddedToken] = (),
        special_tokens: Mapping[str, str] | None = None,
        template: Template | None = None,
        ignore_merges: bool = False,
    ):
        self.vocab: dict[str, int] = dict(vocab)
        self._id_to_token: dict[int, str] = {i: t for t, i in self.vocab.items()}
        if len(self._id_to_token) != len(self.vocab):
            raise ValueError("the vocabulary gives the same id to two tokens")
        self.merges: list[tuple[str, str]] = [(a, b) for a, b in merges]
        for r, (a, b) in enumerate(self.merges):
            for s in (a, b, a + b):
                if s not in self.vocab:
                    raise ValueError(f"merge {r} ({a!r} {b!r}) names {s!r}, which is not in the vocabulary")
        # Rank = position in the list; a pair listed twice keeps its last rank (as tokenizers does).
        self._ranks: dict[tuple[str, str], int] = {m: r for r, m in enumerate(self.merges)}
        self.pattern_name = pattern
        self._pattern = compile_pattern(PATTERNS.get(pattern, pattern))
        self.ignore_merges = ignore_merges  # Llama-3: a pre-token already in the vocab is one token
        self._added: list[AddedToken] = []
        self._added_by_content: dict[str, AddedToken] = {}
        self._added_by_id: dict[int, AddedToken] = {}
        self._added_re = None
        for t in added_tokens:
            self._add_token(t)
        self.special_tokens = dict(special_tokens or {})
        for role, tok in self.special_tokens.items():
            if tok not in self.vocab and tok not in self._added_by_content:
                raise ValueError(f"special token {role}={tok!r} is not in the vocabulary")
        self.template = template if template is not None else Template.none()
        self._cache: dict[str, tuple[tuple[int, ...], tuple[str, ...], tuple[tuple[int, int], ...]]] = {}
        self.dropped_bytes = 0  # bytes of encoded text the vocabulary had no token for (see _encode_piece)
        self._to_byte = {c: b for b, c in bytes_to_unicode().items()}
        # Byte symbols the vocabulary lacks (SmolLM2: 21 of 256); pieces holding one take a slow path.
        self._missing_symbols = frozenset(c for c in self._to_byte if c not in self.vocab)

    # ------------------------------------------------------------------ vocabulary

    def _add_token(self, t: AddedToken) -> None:
        if not t.content:
            raise ValueError("an added token cannot be empty")
        other = self._id_to_token.get(t.id)
        if other is not None and other != t.content:
            raise ValueError(f"added token {t.content!r} wants id {t.id}, which is {other!r}")
        if self.vocab.setdefault(t.content, t.id) != t.id:
            raise ValueError(f"added token {t.content!r} has id {t.id}, but the vocabulary gives it {self.vocab[t.content]}")
        self._id_to_token[t.id] = t.content
        self._added.append(t)
        self._added_by_content[t.content] = t
        self._added_by_id[t.id] = t
        self._added_re = None

    @property
    def added_tokens(self) -> list[str]:
        """Every added token (special or not), matched whole in raw text, leftmost-longest."""
        return [t.content for t in self._added]

    def added_token_objects(self) -> list[AddedToken]:
        return list(self._added)

    def add_tokens(self, tokens: Iterable[str], special: bool = False) -> int:
        """Add tokens (whole, never split) at the end of the vocabulary; returns how many were new."""
        n = 0
        for s in tokens:
            if s in self._added_by_content:
                continue
            i = self.vocab.get(s, max(self._id_to_token, default=-1) + 1)
            self._add_token(AddedToken(s, i, special))
            n += 1
        self._cache.clear()
        return n

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_token)

    # ------------------------------------------------------------------ encoding

    def _bpe(self, sym: str) -> list[str]:
        """GPT-2's bpe(): merge the lowest-ranked adjacent pair everywhere, until none is ranked."""
        word = list(sym)
        ranks = self._ranks
        while len(word) > 1:
            best = None
            best_rank = None
            for p in zip(word, word[1:]):
                r = ranks.get(p)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = p, r
            if best is None:
                break
            a, b = best
            out: list[str] = []
            i, n = 0, len(word)
            while i < n:
                if i + 1 < n and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def _encode_piece(self, piece: str):
        """(ids, tokens, offsets relative to the piece) of one pre-token, cached."""
        hit = self._cache.get(piece)
        if hit is not None:
            return hit
        try:
            sym = to_byte_symbols(piece)
        except UnicodeEncodeError as e:
            raise ValueError(f"cannot encode {piece!r}: {piece[e.start]!r} is a lone surrogate, which has no "
                             "UTF-8 bytes (byte-level BPE encodes valid Unicode text only)") from None
        missing = self._missing_symbols
        if missing and not missing.isdisjoint(sym):
            return self._encode_piece_dropping(piece, sym)  # not cached: it warns each time
        if self.ignore_merges and sym in self.vocab:
            tokens = [sym]
        else:
            tokens = self._bpe(sym)
        vocab = self.vocab
        out = (tuple(vocab[t] for t in tokens), tuple(tokens), tuple(self._offsets(piece, tokens)))
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[piece] = out
        return out

    def _encode_piece_dropping(self, piece: str, sym: str):
        """A piece holding bytes the vocabulary cannot spell (SmolLM2 has no token for 0x04, 0xf1,
        ...). Like `tokenizers`' BPE without unk token, those bytes are dropped before merging (so
        their neighbours may merge across them), and offsets are counted over the kept symbols in
        UTF-8 bytes of the byte-symbol string, then mapped to the piece's characters: tokens after
        a dropped byte shift left. Counted in `dropped_bytes` and warned about, never silent."""
        vocab = self.vocab
        lost = [c for c in sym if c not in vocab]
        self.dropped_bytes += len(lost)
        warnings.warn(f"byte-level BPE: the vocabulary has no token for byte(s) "
                      f"{', '.join(f'0x{self._to_byte[c]:02x}' for c in lost)} in {piece!r}; "
                      "they are left out of the encoding", stacklevel=5)
        kept = "".join(c for c in sym if c in vocab)
        if self.ignore_merges and sym in vocab:
            tokens = [sym]
        else:
            tokens = self._bpe(kept) if kept else []
        # Map a UTF-8 byte of the full byte-symbol string to the piece character it came from.
        char_of_byte = [ci for ci, ch in enumerate(piece) for _ in range(len(ch.encode("utf-8")))]
        char_of_nbyte = [char_of_byte[k] for k, c in enumerate(sym) for _ in range(len(c.encode("utf-8")))]
        offsets = []
        pos = 0
        for t in tokens:
            n = len(t.encode("utf-8"))
            offsets.append((char_of_nbyte[pos], char_of_nbyte[pos + n - 1] + 1))
            pos += n
        return tuple(vocab[t] for t in tokens), tuple(tokens), tuple(offsets)

    @staticmethod
    def _offsets(piece: str, tokens: list[str]) -> list[tuple[int, int]]:
        """Character offsets of each token inside its piece.

        A token covering bytes [b0, b1) spans the characters holding its first and last byte, so a
        character split across tokens gives each of them the whole character (as tokenizers)."""
        offsets = []
        if piece.isascii():
            pos = 0
            for t in tokens:
                offsets.append((pos, pos + len(t)))
                pos += len(t)
        else:
            char_of_byte = []
            for ci, ch in enumerate(piece):
                char_of_byte.extend([ci] * len(ch.encode("utf-8")))
            pos = 0
            for t in tokens:  # each byte symbol is one character of the token
                offsets.append((char_of_byte[pos], char_of_byte[pos + len(t) - 1] + 1))
                pos += len(t)
        return offsets

    def _added_regex(self):
        if self._added_re is None and self._added:
            # Longest first: an alternation takes the first alternative that matches, so this
            # finds the longest added token at the leftmost position (tokenizers' Aho-Corasick
            # with LeftmostLongest).
            contents = sorted(self._added_by_content, key=lambda s: (-len(s), s))
            self._added_re = regex.compile("|".join(regex.escape(s) for s in contents))
        return self._added_re

    def encode_tokens(self, text: str) -> tuple[list[int], list[str], list[tuple[int, int]], list[int]]:
        """(ids, tokens, offsets, word_ids) of `text`, no template: the core of `_encode_text`.

        Added tokens found in the text (`<|im_end|>`) are kept whole; the stretches between them
        are pre-split and BPE-merged. Word ids number the pre-tokens, an added token counting as
        one, as `tokenizers` numbers its splits.
        """
        ids: list[int] = []
        tokens: list[str] = []
        offsets: list[tuple[int, int]] = []
        word_ids: list[int] = []
        pieces: list[tuple[str, int, AddedToken | None]] = []
        rx = self._added_regex()
        if rx is None:
            self._presplit(text, 0, pieces)
        else:
            pos = 0
            for m in rx.finditer(text):
                s, e = m.span()
                if s > pos:
                    self._presplit(text[pos:s], pos, pieces)
                pieces.append((m.group(), s, self._added_by_content[m.group()]))
                pos = e
            if pos < len(text):
                self._presplit(text[pos:], pos, pieces)
        encode_piece = self._encode_piece
        cache = self._cache
        for word, (piece, p0, added) in enumerate(pieces):
            if added is not None:
                ids.append(added.id)
                tokens.append(added.content)
                offsets.append((p0, p0 + len(piece)))
                word_ids.append(word)
                continue
            hit = cache.get(piece)
            p_ids, p_toks, p_offs = hit if hit is not None else encode_piece(piece)
            if len(p_ids) == 1:  # most pre-tokens of real text are one token
                ids.append(p_ids[0])
                tokens.append(p_toks[0])
                a, b = p_offs[0]
                offsets.append((p0 + a, p0 + b))
                word_ids.append(word)
            else:
                ids.extend(p_ids)
                tokens.extend(p_toks)
                offsets.extend([(p0 + a, p0 + b) for a, b in p_offs])
                word_ids.extend([word] * len(p_ids))
        return ids, tokens, offsets, word_ids

    def _presplit(self, text: str, start: int, out: list) -> None:
        """Append the pre-tokens of `text` as (piece, start + offset, None)."""
        if self._pattern.groups == 0:
            parts = self._pattern.findall(text)
            if sum(map(len, parts)) == len(text):  # the matches tile the text (always, for ours)
                pos = start
                for piece in parts:
                    out.append((piece, pos, None))
                    pos += len(piece)
                return
        pos = 0
        for m in self._pattern.finditer(text):
            s, e = m.span()
            if s > pos:  # the shipped patterns match every character; a custom one may leave
                out.append((text[pos:s], start + pos, None))  # gaps: tokenizers keeps them as pieces
            out.append((m.group(), start + s, None))
            pos = e
        if pos < len(text):
            out.append((text[pos:], start + pos, None))

    def _encode_text(self, text: str) -> Encoding:
        if not isinstance(text, str):
            raise TypeError(f"expected a str to encode, got {type(text).__name__}")
        ids, tokens, offsets, word_ids = self.encode_tokens(text)
        return Encoding.from_tokens(ids, tokens, offsets, list(word_ids))

    # ------------------------------------------------------------------ decoding

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Bytes of every token, joined, read as UTF-8 (an incomplete character becomes U+FFFD,
        as `tokenizers`' ByteLevel decoder does). An added token whose characters are not all
        byte symbols contributes its own UTF-8 bytes."""
        to_byte = self._to_byte
        buf = bytearray()
        for i in ids:
            i = int(i)
            tok = self._id_to_token.get(i)
            if tok is None:
                raise ValueError(f"id {i} is not in the vocabulary (size {self.vocab_size})")
            added = self._added_by_id.get(i)
            if added is not None and added.special and skip_special_tokens:
                continue
            try:
                buf.extend([to_byte[c] for c in tok])
            except KeyError:
                buf.extend(tok.encode("utf-8"))
        return buf.decode("utf-8", errors="replace")

    # ------------------------------------------------------------------ files

    def save_vocab_merges(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        vocab = dict(sorted(self.vocab.items(), key=lambda kv: kv[1]))
        atomic_write_bytes(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
        lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in self.merges]
        atomic_write_bytes(folder / "merges.txt", ("\n".join(lines) + "\n").encode("utf-8"))

    @classmethod
    def from_vocab_merges(cls, vocab_file: str | os.PathLike, merges_file: str | os.PathLike, **kwargs) -> "ByteLevelBPETokenizer":
        vocab = read_vocab_json(vocab_file)
        merges = read_merges_txt(merges_file, vocab)
        return cls(vocab, merges, **kwargs)

    def _pre_tokenizer_json(self) -> dict:
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True}
        if self.pattern_name == "gpt2":
            return byte_level
        if self.pattern_name == "smollm":
            return {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
        regex_src = PATTERNS.get(self.pattern_name, self.pattern_name)
        return {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex_src}, "behavior": "Isolated", "invert": False},
                dict(byte_level, use_regex=False),
            ],
        }

    @staticmethod
    def _pattern_from_json(pre: dict | None) -> str:
        where = "tokenizer.json pre_tokenizer"
        if pre is None:
            raise ValueError(f"{where}: byte-level BPE needs a ByteLevel pre-tokenizer, got none")

        def check_bl(bl: dict, use_regex: bool) -> None:
            if bl.get("type") != "ByteLevel":
                raise ValueError(f"{where}: expected ByteLevel, got {bl.get('type')!r}")
            if bl.get("add_prefix_space", False):
                raise ValueError(f"{where}: ByteLevel add_prefix_space=true is not supported")
            if bool(bl.get("use_regex", True)) != use_regex:
                raise ValueError(f"{where}: expected ByteLevel use_regex={str(use_regex).lower()}")

        if pre.get("type") == "ByteLevel":
            check_bl(pre, True)
            return "gpt2"
        if pre.get("type") == "Sequence":
            parts = pre.get("pretokenizers", [])
            if len(parts) == 2 and parts[0].get("type") == "Digits" and parts[0].get("individual_digits"):
                check_bl(parts[1], True)
                return "smollm"
            if len(parts) == 2 and parts[0].get("type") == "Split":
                sp = parts[0]
                if sp.get("behavior") not in ("Isolated", "isolated") or sp.get("invert", False):
                    raise ValueError(f"{where}: only Split(behavior=Isolated, invert=false) is supported")
                src = sp.get("pattern", {}).get("Regex")
                if src is None:
                    raise ValueError(f"{where}: Split needs a Regex pattern")
                check_bl(parts[1], False)
                for name, p in PATTERNS.items():
                    if p == src:
                        return name
                return src
        raise ValueError(f"{where}: unsupported pre-tokenizer {json.dumps(pre)[:200]}")

    def to_hf_json(self) -> dict:
        """This tokenizer as a Hugging Face tokenizer.json object (`tokenizers.Tokenizer.from_str`)."""
        vocab = dict(sorted(self.vocab.items(), key=lambda kv: kv[1]))
        # A TemplateProcessing post-processor (also for "no specials": $A / $A $B:1) leaves offsets
        # untrimmed, like ours; tokenizers' ByteLevel post-processor would trim spaces off them.
        post = self.template.to_hf_json(self.token_to_id)
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {"id": t.id, "content": t.content, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": t.special}
                for t in sorted(self._added, key=lambda t: t.id)
            ],
            "normalizer": None,
            "pre_tokenizer": self._pre_tokenizer_json(),
            "post_processor": post,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                "ignore_merges": self.ignore_merges, "vocab": vocab, "merges": [[a, b] for a, b in self.merges],
            },
        }

    @classmethod
    def from_hf_json(cls, obj: dict, special_tokens: Mapping[str, str] | None = None) -> "ByteLevelBPETokenizer":
        """Build from a parsed tokenizer.json whose model is byte-level BPE."""
        model = obj.get("model") or {}
        if model.get("type") != "BPE":
            raise ValueError(f"tokenizer.json model: expected type 'BPE', got {model.get('type')!r}")
        for key in ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(key):
                raise ValueError(f"tokenizer.json model: {key}={model[key]!r} is not supported by byte-level BPE")
        if model.get("byte_fallback"):
            raise ValueError("tokenizer.json model: byte_fallback is not supported by byte-level BPE")
        if obj.get("normalizer") is not None:
            raise ValueError(f"tokenizer.json normalizer: expected null, got {obj['normalizer'].get('type')!r}")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict):
            raise ValueError("tokenizer.json model.vocab: expected an object token -> id")
        merges = []
        for r, m in enumerate(model.get("merges", [])):
            if isinstance(m, str):
                parts = m.split(" ")
            else:
                parts = list(m)
            if len(parts) != 2 or not all(isinstance(p, str) and p for p in parts):
                raise ValueError(f"tokenizer.json model.merges[{r}]: expected two symbols, got {m!r}")
            a, b = parts
            for s in (a, b, a + b):
                if s not in vocab:
                    raise ValueError(f"tokenizer.json model.merges[{r}]: {s!r} is not in the vocabulary")
            merges.append((a, b))
        added = []
        for t in obj.get("added_tokens") or []:
            for flag in ("lstrip", "rstrip", "single_word"):
                if t.get(flag):
                    raise ValueError(f"tokenizer.json added token {t.get('content')!r}: {flag}=true is not supported")
            added.append(AddedToken(t["content"], int(t["id"]), bool(t.get("special", False))))
        pattern = cls._pattern_from_json(obj.get("pre_tokenizer"))
        template = Template.from_hf_json(obj.get("post_processor"))
        return cls(vocab, merges, pattern=pattern, added_tokens=added, special_tokens=special_tokens,
                   template=template, ignore_merges=bool(model.get("ignore_merges", False)))

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """tokenizer.json, vocab.json + merges.txt, and tokenizer_config.json (the special-token roles)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / "tokenizer.json", json.dumps(self.to_hf_json(), ensure_ascii=False, indent=1).encode("utf-8"))
        self.save_vocab_merges(folder)
        config = {f"{role}_token": tok for role, tok in self.special_tokens.items()}
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        atomic_write_bytes(folder / "tokenizer_config.json", json.dumps(config, ensure_ascii=False, indent=1).encode("utf-8"))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "ByteLevelBPETokenizer":
        folder = Path(folder)
        special: dict[str, str] = {}
        cfg_path = folder / "tokenizer_config.json"
        if cfg_path.exists():
            cfg = _read_json(cfg_path)
            for role in _ROLES:
                v = cfg.get(f"{role}_token")
                if isinstance(v, dict):  # transformers writes AddedToken objects sometimes
                    v = v.get("content")
                if isinstance(v, str):
                    special[role] = v
        if (folder / "tokenizer.json").exists():
            return cls.from_hf_json(_read_json(folder / "tokenizer.json"), special_tokens=special)
        if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
            return cls.from_vocab_merges(folder / "vocab.json", folder / "merges.txt", special_tokens=special)
        raise FileNotFoundError(f"{folder}: expected tokenizer.json, or vocab.json and merges.txt")

    # ------------------------------------------------------------------ GGUF

    @classmethod
    def from_gguf(cls, path: str | os.PathLike, pattern: str | None = None) -> "ByteLevelBPETokenizer":
        """Build from a GGUF file's tokenizer metadata (llama.cpp's `tokenizer.ggml.*` keys).

        Token types (llama.cpp): 1 normal, 3 control -> special added token, 4 user-defined ->
        added token that is not special. `tokenizer.ggml.pre` picks the pre-split regex; for
        SmolLM2 it says "smollm", which llama.cpp and SmolLM2's own tokenizer.json implement as
        individual digits + the GPT-2 regex. (transformers' GGUF loader, as of 5.23, has no entry
        for "smollm" and falls back to the plain GPT-2 regex; the two differ only on whitespace
        right before a digit. Pass `pattern="gpt2"` to reproduce it.) `pattern` overrides the file's
        pre-tokenizer: a name of `bytelevel.PATTERNS` or a regex.
        """
        from gguf import GGUFReader

        path = Path(path)
        reader = GGUFReader(str(path))

        def get(key, default=None):
            f = reader.fields.get(key)
            return default if f is None else f.contents()

        model = get("tokenizer.ggml.model")
        if model != "gpt2":
            raise ValueError(f"{path}: tokenizer.ggml.model is {model!r}; byte-level BPE needs 'gpt2'")
        tokens = get("tokenizer.ggml.tokens")
        merges_raw = get("tokenizer.ggml.merges")
        if tokens is None or merges_raw is None:
            raise ValueError(f"{path}: missing tokenizer.ggml.tokens or tokenizer.ggml.merges")
        types = get("tokenizer.ggml.token_type") or [1] * len(tokens)
        pre = get("tokenizer.ggml.pre", "default")
        if pre not in GGUF_PRE:
            raise ValueError(f"{path}: tokenizer.ggml.pre={pre!r} is not a pre-tokenizer we know ({sorted(GGUF_PRE)})")
        spelling = bytes_to_unicode()
        alpha = set(spelling.values())
        vocab: dict[str, int] = {}
        added = []
        for i, (tok, ty) in enumerate(zip(tokens, types)):
            if ty == 3 or ty == 4:
                added.append(AddedToken(tok, i, special=(ty == 3)))
            elif not set(tok) <= alpha:  # a token stored as raw text: spell its bytes (as transformers does)
                tok = "".join(spelling[b] for b in tok.encode("utf-8"))
            vocab[tok] = i
        merges = []
        for r, m in enumerate(merges_raw):
            parts = m.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{path}: tokenizer.ggml.merges[{r}] = {m!r}; expected two symbols")
            merges.append((parts[0], parts[1]))
        special = {}
        for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id"),
                          ("unk", "unknown_token_id")):
            i = get(f"tokenizer.ggml.{key}")
            if i is not None:
                special[role] = tokens[int(i)]
        tok = cls(vocab, merges, pattern=pattern or GGUF_PRE[pre], added_tokens=added, special_tokens=special,
                  ignore_merges=GGUF_PRE[pre] == "llama3")
        add_bos = bool(get("tokenizer.ggml.add_bos_token", False))
        add_eos = bool(get("tokenizer.ggml.add_eos_token", False))
        tok.template = tok._template_for(add_bos, add_eos)
        return tok

    def _template_for(self, add_bos: bool, add_eos: bool) -> Template:
        """BOS / EOS around each sequence, the way transformers' Llama tokenizers write it."""
        bos, eos = self.special_tokens.get("bos"), self.special_tokens.get("eos")
        if (add_bos and bos is None) or (add_eos and eos is None):
            raise ValueError("add_bos_token / add_eos_token is set but the bos / eos token is not known")
        single = (f"{bos} " if add_bos else "") + "$A" + (f" {eos}" if add_eos else "")
        pair = single + (f" {bos}:1" if add_bos else "") + " $B:1" + (f" {eos}:1" if add_eos else "")
        return Template.parse(single, pair)

    # ------------------------------------------------------------------ training

    @classmethod
    def train(
        cls,
        files: Sequence[str | os.PathLike] | str | os.PathLike,
        vocab_size: int,
        special_tokens: Sequence[str] = ("<|endoftext|>",),
        progress: bool = True,
        min_frequency: int = 0,
    ) -> "ByteLevelBPETokenizer":
        """Train byte-level BPE on text files, the GPT-2 way.

        Each line (with its newline) is pre-split with the GPT-2 regex, pieces are spelled as
        byte symbols and counted; the vocabulary starts with `special_tokens`, then the 256 byte
        symbols (code-point order), then one token per merge until `vocab_size`. With the same
        input this gives the same vocabulary and merges as `tokenizers`' BpeTrainer with
        `initial_alphabet=ByteLevel.alphabet()` (same counting and tie-break; see `learn_merges`).
        """
        if isinstance(files, (str, os.PathLike)):
            files = [files]
        counts = count_byte_level_words(files, progress=progress)
        return cls.train_from_counts(counts, vocab_size, special_tokens=special_tokens, progress=progress,
                                     min_frequency=min_frequency)

    @classmethod
    def train_from_counts(cls, counts: Mapping[str, int], vocab_size: int, special_tokens: Sequence[str] = ("<|endoftext|>",),
                          progress: bool = False, min_frequency: int = 0) -> "ByteLevelBPETokenizer":
        """Train from pre-token counts (pre-tokens as byte symbols, e.g. from `count_byte_level_words`)."""
        specials = list(dict.fromkeys(special_tokens))
        initial = specials + [c for c in alphabet() if c not in specials]
        if vocab_size < len(initial):
            raise ValueError(f"vocab_size {vocab_size} is smaller than the {len(initial)} special and byte symbols")
        words = {tuple(w): n for w, n in counts.items() if w}
        learned = learn_merges(words, initial, vocab_size=vocab_size, min_frequency=min_frequency, progress=progress)
        vocab = {t: i for i, t in enumerate(learned.vocab)}
        added = [AddedToken(s, i, True) for i, s in enumerate(specials)]
        roles = {"bos": specials[0], "eos": specials[0], "unk": specials[0]} if specials else {}
        return cls(vocab, learned.merges, pattern="gpt2", added_tokens=added, special_tokens=roles)


def count_byte_level_words(files: Iterable[str | os.PathLike], progress: bool = False,
                           pattern: str = "gpt2") -> dict[str, int]:
    """Count the pre-tokens of text files, spelled as byte symbols (what the trainer merges).

    Files are read as bytes and split into lines on '\\n' (kept), like `tokenizers`' trainer;
    a line that is not UTF-8 raises an error naming the file and line.
    """
    rx = compile_pattern(PATTERNS.get(pattern, pattern))
    piece_counts: dict[str, int] = defaultdict(int)
    files = [Path(f) for f in files]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(f.stat().st_size for f in files), desc="count words", unit="B", unit_scale=True)
    for f in files:
        data = f.read_bytes()
        lines = data.split(b"\n")
        for lineno, raw in enumerate(lines, 1):
            if lineno < len(lines):
                raw += b"\n"
            if not raw:
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise BPEFileError(f"{f}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
            for piece in rx.findall(line):
                piece_counts[piece] += 1
            if bar is not None:
                bar.update(len(raw))
    if bar is not None:
        bar.close()
    out: dict[str, int] = defaultdict(int)
    for piece, n in piece_counts.items():
        out[to_byte_symbols(piece)] += n
    return dict(out)
