"""WordPiece: the greedy longest-match-first segmenter of BERT, and a WordPiece learner.

What this file does:

* `WordPieceTokenizer`: BERT's tokenizer (Devlin et al. 2019, sec. 3; google-research/bert
  ``WordpieceTokenizer``). Text goes through BERT's basic pre-tokenizer (normalize.py), then each
  word is cut greedily: the longest vocabulary entry that starts the word, then the longest entry
  ``##...`` that continues it, and so on (Wu et al. 2016, the GNMT word-piece model). A word that
  cannot be covered, or is longer than 100 characters, becomes one ``[UNK]``. Words repeat, so the
  pieces of each word are cached. Ids and offsets equal those of Hugging Face ``tokenizers``
  (tests/test_wordpiece.py checks every line of PTB, BBC News and WNUT-16).
* `learn_wordpiece`: the WordPiece learner as described by Schuster & Nakajima (2012) and the
  Hugging Face course: start from the characters (a character inside a word is ``##c``), then
  repeatedly merge the adjacent pair with the highest score ``freq(ab) / (freq(a) * freq(b))``
  (or, with ``score="frequency"``, the most frequent pair: `tokenizers`' WordPieceTrainer) until
  the vocabulary has the size asked for. This file picks the alphabet and the rules; the merging
  is the one merge learner BPE also uses (merges.py).

What it does not do: the post-processing ([CLS]/[SEP], truncation, padding: encoding.py), added
tokens in the text (added.py), word counting (corpus.py), or file formats (io/wordpiece.py;
`save_pretrained` / `from_pretrained` call it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .corpus import count_words
from .added import added_tokens_pattern, encode_with_added_tokens
from .encoding import Encoding, Template, Tokenizer
from .merges import learn_merges
from .normalize import BertNormalizer

# BERT's special tokens, in the order the learner reserves them (ids 0..4, as bert-base's vocab
# puts [PAD] at 0; tokenizers' BertWordPieceTokenizer uses the same order).
SPECIAL_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}

Piece = tuple[int, str, int, int]  # (id, token, start, end) with start/end in the normalized word


@dataclass(frozen=True)
class WordPieceConfig:
    """The segmenter's options (the fields of tokenizer.json's WordPiece model)."""

    unk_token: str = "[UNK]"  # BERT's unknown token
    prefix: str = "##"  # marks a piece that continues a word (BERT, GNMT)
    max_input_chars_per_word: int = 100  # google-research/bert: longer words are [UNK], not cut


class WordPieceTokenizer(Tokenizer):
    """BERT's WordPiece tokenizer over a vocabulary (token -> id).

    `special_tokens` maps roles to tokens (default BERT's ``[PAD] [UNK] [CLS] [SEP] [MASK]``, each
    kept only if in the vocabulary); `template` defaults to ``[CLS] $A [SEP] $B:1 [SEP]:1``.
    `added_tokens` (token -> is special; default: the special tokens) are kept whole when written
    in the text (``"a [SEP] b"``), as in tokenizers; `decode` skips the special ones.
    """

    cache_size = 500_000  # distinct words kept; cleared when full (text repeats its words)

    def __init__(self, vocab: Mapping[str, int] | Sequence[str], *, normalizer: BertNormalizer | None = None,
                 config: WordPieceConfig | None = None, special_tokens: Mapping[str, str] | None = None,
                 template: Template | None = None,
                 added_tokens: Mapping[str, bool] | Iterable[str] | None = None,
                 model_max_length: int | None = None):
        if not isinstance(vocab, Mapping):
            vocab = {t: i for i, t in enumerate(vocab)}
        self.vocab: dict[str, int] = dict(vocab)
        self._id_to_token: dict[int, str] = {}
        for t, i in self.vocab.items():
            if i in self._id_to_token:
                raise ValueError(f"vocabulary: id {i} is given to both {self._id_to_token[i]!r} and {t!r}")
            self._id_to_token[i] = t
        self.normalizer = normalizer or BertNormalizer()
        self.config = config or WordPieceConfig()
        if special_tokens is None:
            special_tokens = {r: t for r, t in SPECIAL_TOKENS.items() if t in self.vocab}
            special_tokens.setdefault("unk", self.config.unk_token)
        self.special_tokens = dict(special_tokens)
        for role, tok in self.special_tokens.items():
            if tok not in self.vocab:
                raise ValueError(f"special token {role}={tok!r} is not in the vocabulary")
        if self.config.unk_token not in self.vocab:
            raise ValueError(f"the unknown token {self.config.unk_token!r} is not in the vocabulary")
        if template is None:
            cls_tok, sep_tok = self.special_tokens.get("cls"), self.special_tokens.get("sep")
            template = Template.bert(cls_tok, sep_tok) if cls_tok and sep_tok else Template.none()
        self.template = template
        for tok in template.special_tokens():
            if tok not in self.vocab:
                raise ValueError(f"template token {tok!r} is not in the vocabulary")
        # Tokens matched whole in the raw text (tokenizers' added vocabulary), each with its
        # "special" flag (decode skips special ones). Default: the special tokens.
        if added_tokens is None:
            added_tokens = self.special_tokens.values()
        if not isinstance(added_tokens, Mapping):
            added_tokens = {t: True for t in added_tokens}
        self.added_tokens: dict[str, bool] = {t: bool(f) for t, f in added_tokens.items()}
        for tok in self.added_tokens:
            if tok not in self.vocab:
                raise ValueError(f"added token {tok!r} is not in the vocabulary")
        self._added_re = added_tokens_pattern(self.added_tokens)
        self._special_ids = frozenset(self.vocab[t] for t, special in self.added_tokens.items() if special) | \
            frozenset(self.vocab[t] for t in self.special_tokens.values())
        self.model_max_length = model_max_length  # informational (tokenizer.json's truncation)
        # Longest vocabulary entries, in characters, to bound the greedy search.
        p = self.config.prefix
        self._max_first = max((len(t) for t in self.vocab if not t.startswith(p)), default=1)
        self._max_cont = max((len(t) - len(p) for t in self.vocab if t.startswith(p)), default=1)
        self._unk_id = self.vocab[self.config.unk_token]
        self._cache: dict[str, tuple[tuple[int, ...], tuple[str, ...], tuple[tuple[int, int], ...]]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    # -- segmentation ---------------------------------------------------------------------------
    def segment_word(self, word: str) -> tuple[Piece, ...]:
        """Greedy longest-match-first pieces of one normalized word (google-research/bert
        ``WordpieceTokenizer.tokenize``): (id, token, start, end), start/end in `word`."""
        ids, tokens, spans = self._pieces(word)
        return tuple((i, t, s, e) for i, t, (s, e) in zip(ids, tokens, spans))

    def _pieces(self, word: str) -> tuple[tuple[int, ...], tuple[str, ...], tuple[tuple[int, int], ...]]:
        """`segment_word` as (ids, tokens, spans), cached per word."""
        got = self._cache.get(word)
        if got is None:
            ps = self._segment(word)
            got = (tuple(p[0] for p in ps), tuple(p[1] for p in ps), tuple((p[2], p[3]) for p in ps))
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[word] = got
        return got

    def _segment(self, word: str) -> tuple[Piece, ...]:
        n = len(word)
        unk = ((self._unk_id, self.config.unk_token, 0, n),)
        if n > self.config.max_input_chars_per_word:
            return unk
        vocab, prefix = self.vocab, self.config.prefix
        out: list[Piece] = []
        start = 0
        while start < n:
            # Longest first; no entry is longer than _max_first / _max_cont characters.
            end = min(n, start + (self._max_cont if start else self._max_first))
            while end > start:
                sub = word[start:end] if start == 0 else prefix + word[start:end]
                i = vocab.get(sub)
                if i is not None:
                    out.append((i, sub, start, end))
                    break
                end -= 1
            else:
                return unk  # nothing in the vocabulary continues the word: the whole word is [UNK]
            start = end
        return tuple(out)

    def _encode_text(self, text: str) -> Encoding:
        return encode_with_added_tokens(text, self._added_re, self._encode_plain, self.vocab.__getitem__)

    def _encode_plain(self, text: str) -> tuple[Encoding, int]:
        """Tokens of a text with no added tokens in it, and its number of words: pre-tokenize, then
        the pieces of each word.

        List comprehensions over the cached pieces of each word, no per-token statements."""
        get, pieces = self._cache.get, self._pieces
        words, starts, aligns = self.normalizer.split_columns(text)
        segs = [get(w) or pieces(w) for w in words]
        ids = [i for sg in segs for i in sg[0]]
        tokens = [t for sg in segs for t in sg[1]]
        word_ids = [k for k, sg in enumerate(segs) for _ in sg[0]]
        if aligns is None:  # every word is text[start:start + len(word)], character for character
            offsets = [(st + s, st + e) for st, sg in zip(starts, segs) for s, e in sg[2]]
        else:  # where given, normalized character k of a word came from original character align[k]
            offsets = [(st + s, st + e) if al is None else (al[s], al[e - 1] + 1)
                       for st, al, sg in zip(starts, aligns, segs) for s, e in sg[2]]
        return Encoding.from_tokens(ids, tokens, offsets, word_ids), len(segs)

    def tokenize(self, text: str) -> list[str]:
        """The tokens of a text, without special tokens."""
        return self._encode_sequence(text).tokens

    # -- decoding -------------------------------------------------------------------------------
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Join the pieces (``##`` glues to the previous piece), then tokenizers' WordPiece
        decoder clean-up (`` .`` -> ``.``, `` n't`` -> ``n't``, ...)."""
        prefix = self.config.prefix
        parts: list[str] = []
        for i in ids:
            i = int(i)
            tok = self._id_to_token.get(i)
            if tok is None:
                raise ValueError(f"id {i} is not in the vocabulary (size {self.vocab_size})")
            if skip_special_tokens and i in self._special_ids:
                continue
            if parts:
                tok = tok[len(prefix):] if tok.startswith(prefix) else " " + tok
            parts.append(_cleanup(tok))
        return "".join(parts)

    # -- files ----------------------------------------------------------------------------------
    def save_pretrained(self, folder) -> None:
        """vocab.txt, tokenizer.json and tokenizer_config.json, the files of a Hugging Face folder."""
        from .io.wordpiece import save_wordpiece

        save_wordpiece(self, folder)

    @classmethod
    def from_pretrained(cls, folder) -> "WordPieceTokenizer":
        """From a folder with tokenizer.json (preferred) or vocab.txt, or from either file."""
        from .io.wordpiece import load_wordpiece

        return load_wordpiece(folder)

    # -- learning -------------------------------------------------------------------------------
    @classmethod
    def train(cls, files: Sequence[str | os.PathLike], vocab_size: int = 30522, *, lowercase: bool = True,
              min_frequency: int = 2, special_tokens: Sequence[str] = tuple(SPECIAL_TOKENS.values()),
              score: str = "likelihood", progress: bool = False) -> "WordPieceTokenizer":
        """Learn a vocabulary from UTF-8 text files (a bad byte is an error naming file and line).
        score: "likelihood" (the WordPiece paper's) or "frequency" (tokenizers'); see learn_wordpiece."""
        from tqdm import tqdm

        from .corpus import iter_text_lines

        lines = tqdm(iter_text_lines(files), desc="counting words", unit=" lines", disable=not progress)
        return cls.train_from_iterator(lines, vocab_size, lowercase=lowercase,
                                       min_frequency=min_frequency, special_tokens=special_tokens,
                                       score=score, progress=progress)

    @classmethod
    def train_from_iterator(cls, texts: Iterable[str], vocab_size: int = 30522, *, lowercase: bool = True,
                            min_frequency: int = 2,
                            special_tokens: Sequence[str] = tuple(SPECIAL_TOKENS.values()),
                            score: str = "likelihood", progress: bool = False) -> "WordPieceTokenizer":
        normalizer = BertNormalizer(lowercase=lowercase)
        counts = count_words(texts, normalizer)
        vocab = learn_wordpiece(counts, vocab_size, special_tokens=special_tokens, min_frequency=min_frequency,
                                score=score, progress=progress)
        roles = {r: t for r, t in SPECIAL_TOKENS.items() if t in special_tokens}
        return cls(vocab, normalizer=normalizer, special_tokens=roles)


def _cleanup(s: str) -> str:
    # tokenizers' decoders::wordpiece::cleanup, applied to each piece as it is.
    return (s.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
            .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" do not", " don't")
            .replace(" 's", "'s").replace(" 've", "'ve").replace(" 're", "'re"))


# ---------------------------------------------------------------------------------------------
# The learner: the alphabet and the rules; merges.py does the merging


SCORES = ("likelihood", "frequency")  # how the learner picks the next pair (see learn_wordpiece)


def learn_wordpiece(word_counts: Mapping[str, int], vocab_size: int, *,
                    special_tokens: Sequence[str] = tuple(SPECIAL_TOKENS.values()), prefix: str = "##",
                    min_frequency: int = 1, max_word_chars: int = 100, score: str = "likelihood",
                    progress: bool = False) -> list[str]:
    """Learn a WordPiece vocabulary (the returned list; a token's id is its index).

    1. The vocabulary starts with `special_tokens`, then the alphabet: every character that begins
       a word, and ``##c`` for every character ``c`` seen inside a word, in code-point order.
    2. While the vocabulary is smaller than `vocab_size`, merge the adjacent pair (a, b) with the
       highest score ``freq(ab) / (freq(a) * freq(b))``, where frequencies count occurrences in the
       current segmentation of the corpus (WordPiece, Schuster & Nakajima 2012; the pair ``a ##b``
       becomes ``ab``, ``##a ##b`` becomes ``##ab``). Only pairs seen at least `min_frequency`
       times qualify. Merging a pair that spells an existing token adds nothing to the vocabulary.
    Ties (equal scores, as floats) go to the more frequent pair, then to the pair whose (a, b)
    strings sort first in code-point order.

    score="frequency" merges the most frequent pair instead (plain BPE counting with a ``##``
    continuation prefix: what `tokenizers`' WordPieceTrainer does). The likelihood score favours
    pairs of rare symbols, so on a mid-size corpus frequent words stay split into letters ("the" ->
    "th ##e" even at 30k entries); frequency merges build whole common words first.

    Words longer than `max_word_chars` are left out (the segmenter turns them into [UNK] anyway).

    The merging is `merges.learn_merges` (incremental pair counts, every word holding the pair
    rewritten: ``scope="pair"``); tests/test_wordpiece.py checks the result against a learner
    that recounts everything before each merge.
    """
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, not {score!r}")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special tokens repeat: {list(special_tokens)}")
    words: dict[tuple[str, ...], int] = {}
    for word, c in word_counts.items():
        if word and len(word) <= max_word_chars and c > 0:
            words[(word[0], *(prefix + ch for ch in word[1:]))] = int(c)
    symbols = {s for w in words for s in w}
    specials = set(special_tokens)
    if score == "likelihood":
        alphabet = sorted(s for s in symbols if s not in specials)
    else:
        # As tokenizers' BpeTrainer: every character of the corpus as a word start (code-point
        # order), then the ``##`` forms seen inside words (tokenizers adds those in hash order).
        plen = len(prefix)
        chars = sorted({ch for s in symbols for ch in (s[plen:] if s.startswith(prefix) else s)})
        alphabet = [s for s in chars + sorted(s for s in symbols if s.startswith(prefix)) if s not in specials]
    initial = list(special_tokens) + alphabet
    if len(initial) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is too small: the {len(special_tokens)} special tokens and the "
                         f"{len(alphabet)} characters of the corpus need {len(initial)} entries")
    likelihood = score == "likelihood"
    learned = learn_merges(words, initial, vocab_size=vocab_size, min_frequency=min_frequency,
                           score="likelihood" if likelihood else "count",
                           tie_break="strings" if likelihood else "ids", scope="pair", prefix=prefix,
                           progress=progress)
    return learned.vocab


__all__ = ["SCORES", "SPECIAL_TOKENS", "WordPieceConfig", "WordPieceTokenizer", "learn_wordpiece"]
