"""Byte-level BPE (GPT-2, Llama-3, SmolLM2): text -> ids with ranked merges, and back.

`ByteLevelBPETokenizer` encodes a text in four steps: (1) cut out the added tokens (added.py:
longest match at the leftmost position, as `tokenizers`' AddedVocabulary does), (2) pre-split
the rest with the model's regex (bytelevel.py), (3) spell each piece's UTF-8 bytes as byte
symbols and (4) merge, lowest-ranked pair first (GPT-2's `bpe()`), until no ranked pair is left.
Character offsets point into the input (as `tokenizers` reports them with trim_offsets=False),
and `decode(encode(x)) == x`.

Speed (benchmarks/bpe.py, against `tokenizers` on one thread): each pre-token's encoding is cached
and a text is built from the cached tuples by C-level iterators (`_encode_plain`); ASCII and latin-1 text is
pre-split by the standard-`re` twin of the pattern and spelled as byte symbols by one translate;
a text holding no character that begins an added token skips the added-token search; `_bpe`
keeps the pair ranks in a list and looks up only the two pairs beside each merge. `train` learns a vocabulary with
the one merge learner (merges.py), the way `tokenizers`' BpeTrainer does.

What it does not do: BPE dropout, byte fallback / unk tokens (a byte the vocabulary has no token
for is left out, as `tokenizers` does, with a warning and a count in `dropped_bytes`; SmolLM2's
vocabulary lacks 21 of the 256 bytes, e.g. 0x04 and the lead byte 0xf1), normalizers,
`add_prefix_space`, added tokens with lstrip / rstrip / single_word (rejected when reading); the
file formats (vocab.json + merges.txt, tokenizer.json: io/bpe.py; GGUF: io/gguf.py; the methods
here call them); word counting (corpus.py); the special-token templates, truncation, windows,
batching and padding (the `Tokenizer` base class, encoding.py).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, chain, islice, repeat
from operator import add, itemgetter, sub

from .added import AddedToken, added_tokens_pattern, encode_with_added_tokens
from .bytelevel import (PATTERNS, alphabet, bytes_to_unicode, compile_pattern, latin1_pattern, symbol_table,
                        to_byte_symbols)
from .encoding import Encoding, Tokenizer
from .merges import learn_merges
from .template import Template

ROLES = ("bos", "eos", "pad", "unk")  # the special-token roles a byte-level tokenizer may have

# A pre-token's encoding, as cached: (flat, starts, ends). flat interleaves each token's id, string
# and length in characters (id0, token0, len0, id1, ...), so that one chain over the pieces of a
# text gives all three (sliced apart with [0::3], [1::3], [2::3]); the length is None where the
# tokens do not tile the piece (a token splits a character, or bytes were dropped). starts / ends
# are each token's character offsets inside the piece.
_Piece = tuple[tuple, tuple[int, ...], tuple[int, ...]]
_FLAT, _STARTS, _ENDS = (itemgetter(k) for k in range(3))
_NO_RANK = 1 << 62  # the rank of a pair that is not a merge (above any real rank)


def _piece(piece: str, ids: Sequence[int], tokens: Sequence[str], starts: tuple[int, ...],
           ends: tuple[int, ...]) -> _Piece:
    tiles = bool(ids) and starts[0] == 0 and ends[-1] == len(piece) and starts[1:] == ends[:-1]
    lens = map(sub, ends, starts) if tiles else repeat(None)
    return tuple(chain.from_iterable(zip(ids, tokens, lens))), starts, ends


class ByteLevelBPETokenizer(Tokenizer):
    """Byte-level BPE over a vocabulary and ranked merges (the steps are in the module docstring)."""

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
        self._merged = [a + b for a, b in self.merges]  # rank -> the token it makes
        self.pattern_name = pattern
        self._pattern = compile_pattern(PATTERNS.get(pattern, pattern))
        self._latin1_pattern = latin1_pattern(PATTERNS.get(pattern, pattern))  # None for a custom pattern
        self.ignore_merges = ignore_merges  # Llama-3: a pre-token already in the vocab is one token
        self._added: list[AddedToken] = []
        self._added_by_content: dict[str, AddedToken] = {}
        self._added_by_id: dict[int, AddedToken] = {}
        self._added_re = None
        self._added_firsts: frozenset[str] | None = None  # first characters of the added tokens (few)
        for t in added_tokens:
            self._add_token(t)
        self.special_tokens = dict(special_tokens or {})
        for role, tok in self.special_tokens.items():
            if tok not in self.vocab and tok not in self._added_by_content:
                raise ValueError(f"special token {role}={tok!r} is not in the vocabulary")
        self.template = template if template is not None else Template.none()
        self._cache: dict[str, _Piece] = {}
        self.dropped_bytes = 0  # bytes of encoded text the vocabulary had no token for (see _encode_piece)
        self._to_byte = {c: b for b, c in bytes_to_unicode().items()}
        self._byte_symbols = symbol_table()  # str.translate: a latin-1 / ASCII character -> its byte symbol
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
        """GPT-2's bpe(): merge the lowest-ranked adjacent pair everywhere, until none is ranked.

        `rs[k]` is the rank of the pair (word[k], word[k + 1]) (unranked: `_NO_RANK`); one `min`
        finds the next merge. A pair that occurs once (the usual case) is merged in place and
        only the two ranks beside it are looked up again; one that occurs more often is merged
        left to right, each occurrence once ("a a a" -> "aa a"), and the ranks recomputed."""
        word = list(sym)
        if len(word) < 2:
            return word
        get, merged = self._ranks.get, self._merged
        rs = list(map(get, zip(word, islice(word, 1, None)), repeat(_NO_RANK)))
        while True:
            r = min(rs)
            if r == _NO_RANK:
                return word
            ab = merged[r]
            i = rs.index(r)
            if rs.count(r) == 1:
                word[i] = ab
                del word[i + 1], rs[i]
                if not rs:
                    return word
                if i:
                    rs[i - 1] = get((word[i - 1], ab), _NO_RANK)
                if i < len(rs):
                    rs[i] = get((ab, word[i + 1]), _NO_RANK)
                continue
            a, b = self.merges[r]
            out = word[:i]
            n = len(word)
            while i < n:
                if i + 1 < n and word[i] == a and word[i + 1] == b:
                    out.append(ab)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
            if len(word) == 1:
                return word
            rs = list(map(get, zip(word, islice(word, 1, None)), repeat(_NO_RANK)))

    def _encode_piece(self, piece: str) -> _Piece:
        """The `_Piece` of one pre-token, cached (`_encode_plain` reads the cache itself first)."""
        if piece.isascii():  # one translate: each ASCII character is one byte, one symbol
            sym = piece.translate(self._byte_symbols)
        else:
            try:
                sym = to_byte_symbols(piece)
            except UnicodeEncodeError as e:
                raise ValueError(f"cannot encode {piece!r}: {piece[e.start]!r} is a lone surrogate, which has no "
                                 "UTF-8 bytes (byte-level BPE encodes valid Unicode text only)") from None
        missing = self._missing_symbols
        if missing and not missing.isdisjoint(sym):
            return self._encode_piece_dropping(piece, sym)  # not cached: it warns each time
        vocab = self.vocab
        if len(sym) == 1 or (self.ignore_merges and sym in vocab):
            tokens = [sym]
        else:
            tokens = self._bpe(sym)
        out = _piece(piece, list(map(vocab.__getitem__, tokens)), tokens, *self._offsets(piece, tokens))
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[piece] = out
        return out

    def _encode_piece_dropping(self, piece: str, sym: str) -> _Piece:
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
        starts, ends = [], []
        pos = 0
        for t in tokens:
            n = len(t.encode("utf-8"))
            starts.append(char_of_nbyte[pos])
            ends.append(char_of_nbyte[pos + n - 1] + 1)
            pos += n
        return _piece(piece, [vocab[t] for t in tokens], tokens, tuple(starts), tuple(ends))

    @staticmethod
    def _offsets(piece: str, tokens: list[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Character offsets (starts, ends) of each token inside its piece.

        A token covering bytes [b0, b1) spans the characters holding its first and last byte, so a
        character split across tokens gives each of them the whole character (as tokenizers)."""
        if len(tokens) == 1:
            return (0,), (len(piece),)
        ends = tuple(accumulate(map(len, tokens)))  # each byte symbol is one character of the token
        if piece.isascii():  # one byte, one character
            return (0,) + ends[:-1], ends
        char_of_byte = []
        for ci, ch in enumerate(piece):
            char_of_byte.extend([ci] * len(ch.encode("utf-8")))
        return (tuple(char_of_byte[b] for b in (0,) + ends[:-1]),
                tuple(char_of_byte[b - 1] + 1 for b in ends))

    def _added_regex(self):
        if self._added_re is None and self._added:
            self._added_re = added_tokens_pattern(self._added_by_content)
            firsts = frozenset(t.content[0] for t in self._added)
            self._added_firsts = firsts if len(firsts) <= 8 else None
        return self._added_re

    def _encode_text(self, text: str) -> Encoding:
        if not isinstance(text, str):
            raise TypeError(f"expected a str to encode, got {type(text).__name__}")
        pattern = self._added_regex()
        # Most texts hold none of the characters that begin an added token (SmolLM2's all begin
        # with "<"); a substring test or two is much cheaper than the regex search.
        if pattern is None or (self._added_firsts is not None and not any(map(text.__contains__, self._added_firsts))):
            return self._encode_plain(text)[0]
        return encode_with_added_tokens(text, pattern, self._encode_plain, self.vocab.__getitem__)

    def _encode_plain(self, text: str) -> tuple[Encoding, int]:
        """Encoding of a text without added tokens, and its number of pre-tokens. Word ids number
        the pre-tokens, as `tokenizers` numbers its splits.

        Real text repeats its pre-tokens, so this is mostly cache look-ups and list building: the
        per-token lists come from C-level iterators over the cached tuples (map, chain,
        accumulate, zip), with no Python statement per token or per cached piece (the levers of
        wordpiece.py's `_encode_plain`). Where every piece's tokens tile it (all but pieces that
        split a character or drop bytes) the offsets are running sums of token lengths, and where
        every piece is one token the word ids are 0, 1, 2, ..."""
        parts, starts = self._presplit(text)
        cache = self._cache
        segs = list(map(cache.get, parts))
        empty = False  # a piece with no token (all its bytes dropped; such pieces are never cached)
        if None in segs:  # cache misses: only these go through Python code
            k, miss = segs.index(None), self._encode_piece
            while True:
                segs[k] = seg = cache.get(parts[k]) or miss(parts[k])
                empty = empty or not seg[0]
                try:
                    k = segs.index(None, k + 1)
                except ValueError:
                    break
        flat = list(chain.from_iterable(map(_FLAT, segs)))
        ids, tokens, lens = flat[0::3], flat[1::3], flat[2::3]
        if starts is None and not empty and None not in lens:  # tokens tile pieces, pieces tile the text
            ends = list(accumulate(lens, initial=0))
            offsets = list(zip(ends, islice(ends, 1, None)))
            if len(ids) == len(segs):  # one token per piece
                return Encoding.from_tokens(ids, tokens, offsets, list(range(len(ids)))), len(segs)
        else:
            offsets = None
        n_tok = list(map(len, map(_STARTS, segs)))
        word_ids = list(chain.from_iterable(map(repeat, range(len(segs)), n_tok)))
        if offsets is None:
            if starts is None:
                starts = list(accumulate(map(len, parts), initial=0))
            p0 = list(chain.from_iterable(map(repeat, starts, n_tok)))  # each token's piece start
            offsets = list(zip(map(add, p0, chain.from_iterable(map(_STARTS, segs))),
                               map(add, p0, chain.from_iterable(map(_ENDS, segs)))))
        return Encoding.from_tokens(ids, tokens, offsets, word_ids), len(segs)

    def _presplit(self, text: str) -> tuple[list[str], list[int] | None]:
        """The pre-tokens of `text` and their character offsets (None: the pieces tile the text,
        each starts where the one before ends). Text below U+0100 (ASCII, latin-1) with a shipped
        pattern goes through its twin (bytelevel.latin1_pattern: the same matches, standard `re`)."""
        pattern = self._pattern
        if self._latin1_pattern is not None and (text.isascii() or max(text) < "\u0100"):
            pattern = self._latin1_pattern
        if pattern.groups == 0:
            parts = pattern.findall(text)
            if sum(map(len, parts)) == len(text):  # the matches tile the text (always, for ours)
                return parts, None
        parts, starts = [], []
        pos = 0
        for m in pattern.finditer(text):
            s, e = m.span()
            if s > pos:  # the shipped patterns match every character; a custom one may leave
                parts.append(text[pos:s])  # gaps: tokenizers keeps them as pieces
                starts.append(pos)
            parts.append(m.group())
            starts.append(s)
            pos = e
        if pos < len(text):
            parts.append(text[pos:])
            starts.append(pos)
        return parts, starts

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

    # ------------------------------------------------------------------ files (io/bpe.py, io/gguf.py)

    def save_vocab_merges(self, folder: str | os.PathLike) -> None:
        from .io.bpe import save_vocab_merges

        save_vocab_merges(self, folder)

    @classmethod
    def from_vocab_merges(cls, vocab_file: str | os.PathLike, merges_file: str | os.PathLike,
                          **kwargs) -> "ByteLevelBPETokenizer":
        from .io.bpe import from_vocab_merges

        return from_vocab_merges(vocab_file, merges_file, **kwargs)

    def to_hf_json(self) -> dict:
        """This tokenizer as a Hugging Face tokenizer.json object (`tokenizers.Tokenizer.from_str`)."""
        from .io.bpe import bpe_to_hf_json

        return bpe_to_hf_json(self)

    @classmethod
    def from_hf_json(cls, obj: dict, special_tokens: Mapping[str, str] | None = None) -> "ByteLevelBPETokenizer":
        """Build from a parsed tokenizer.json whose model is byte-level BPE."""
        from .io.bpe import bpe_from_hf_json

        return bpe_from_hf_json(obj, special_tokens)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """tokenizer.json, vocab.json + merges.txt, and tokenizer_config.json (the special-token roles)."""
        from .io.bpe import save_bpe

        save_bpe(self, folder)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "ByteLevelBPETokenizer":
        """From a folder with tokenizer.json, or vocab.json + merges.txt (+ tokenizer_config.json)."""
        from .io.bpe import load_bpe

        return load_bpe(folder)

    @classmethod
    def from_gguf(cls, path: str | os.PathLike, pattern: str | None = None) -> "ByteLevelBPETokenizer":
        """From a GGUF file's tokenizer metadata; `pattern` overrides its pre-tokenizer (io/gguf.py)."""
        from .io.gguf import load_gguf

        return load_gguf(path, pattern)

    def _template_for(self, add_bos: bool, add_eos: bool) -> Template:
        """BOS / EOS around each sequence, the way transformers' Llama tokenizers write it."""
        bos, eos = self.special_tokens.get("bos"), self.special_tokens.get("eos")
        if (add_bos and bos is None) or (add_eos and eos is None):
            raise ValueError("add_bos_token / add_eos_token is set but the bos / eos token is not known")
        single = (f"{bos} " if add_bos else "") + "$A" + (f" {eos}" if add_eos else "")
        pair = single + (f" {bos}:1" if add_bos else "") + " $B:1" + (f" {eos}:1" if add_eos else "")
        return Template.parse(single, pair)

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
        `initial_alphabet=ByteLevel.alphabet()` (same counting, tie-break and merge scope; see merges.py).
        """
        from .corpus import count_byte_level_words

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


__all__ = ["AddedToken", "ByteLevelBPETokenizer", "ROLES"]
