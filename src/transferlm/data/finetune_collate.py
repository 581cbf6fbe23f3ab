"""Fine-tuning batches: word <-> subword bookkeeping, length-bucketed batches, padding.

What this file does:
- `encode_words`: a pre-tokenized sentence (list of words) -> the tokenizer's windows, each with
  GLOBAL word ids (which word every subword came from, None for special tokens) and the
  character offsets of the words in the joined text. The words are joined with single spaces and
  every subword is mapped to a word by its character offset, so the tokenizer's own
  pre-tokenisation (which splits "#tag" into "#", "tag") never changes the word count;
- `align_labels`: word-level label ids -> subword-level label ids from a tokenizer's `word_ids`
  (None for special tokens); every subword labelled, or only the first (others -100): the one
  alignment implementation (heads/ and pipelines/ import it from here);
- `align_window_labels`: word labels -> subword labels for one window, with, for entity tags
  (BIO / BIOES), a window that starts inside an entity made to start it (I-X -> B-X) and, in
  BIOES, one that ends inside an entity made to end it (B-X -> S-X, I-X -> E-X), so a window is a
  valid tag sequence on its own; plain tag sets (part of speech, any other) are aligned as they are;
- `word_spans`: a raw text -> words with character offsets (for `Tagger.predict(texts)`);
- `BucketedBatches`: a dataset whose items are whole batches of examples of similar length
  (re-drawn every epoch from a seeded permutation: chunks of `bucket_factor` batches are sorted
  by length and cut into batches); the shared Trainer shuffles those batches. With similar
  lengths in a batch almost no position is padding, and the Encoder already drops columns that
  are padding in every row, so nearly no compute is spent on padding;
- `FinetuneCollator`: pads a batch (data/collate.py's `pad_examples`) and passes list-valued
  fields (gold spans) through as Python lists.

What it does not: read files (data/formats.py), decide labels (pipelines/), or pack several
sequences into one row (attention would need block masks).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .collate import IGNORE_INDEX, pad_examples
from .formats import detect_scheme, normalize_scheme


# ----------------------------------------------------------------------------------------------
# words <-> subwords


@dataclass
class WordWindow:
    """One window of a pre-tokenized sentence as the model sees it."""

    input_ids: list[int]
    token_type_ids: list[int]
    word_ids: list[int | None]  # global word index of each subword; None for special tokens


def _join(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    return " ".join(words), spans


def encode_words(tokenizer, words: Sequence[str], max_length: int, stride: int = 0,
                 windows: bool = True) -> list[WordWindow]:
    """The windows of one pre-tokenized sentence (one window if it fits, or windows=False).

    A word the tokenizer turns into nothing (e.g. a lone variation selector, which BERT's
    normaliser strips) is replaced by the unknown token for encoding, so every word keeps at
    least one subword and word-level heads see every word.
    """
    if not words:
        raise ValueError("cannot encode an empty sentence")
    words = list(words)
    for _ in range(2):
        text, spans = _join(words)
        char_word = [0] * len(text)
        for w, (a, b) in enumerate(spans):
            for c in range(max(a - 1, 0), b):  # the space before a word counts as the word's
                char_word[c] = w  # (byte-level BPE tokens carry their leading space)
        enc = tokenizer.encode(text, max_length=max_length, truncation="longest_first",
                               stride=stride, return_overflowing=windows)
        out = []
        for e in [enc, *enc.overflowing]:
            wid = [None if s or a >= len(text) else char_word[a]
                   for (a, _), s in zip(e.offsets, e.special_tokens_mask)]
            out.append(WordWindow(list(e.ids), list(e.type_ids), wid))
        seen = {w for win in out for w in win.word_ids if w is not None}
        if not windows:  # truncation: only the words after the last one seen may be missing
            last = max(seen) if seen else -1
            empty = [w for w in range(last + 1) if w not in seen]
        else:
            empty = [w for w in range(len(words)) if w not in seen]
        if not empty:
            return out
        unk = tokenizer.special_tokens.get("unk", "?")
        for w in empty:
            words[w] = unk
    raise ValueError(f"words {empty[:5]} of {words[:20]} give no subword even as {unk!r}")


def word_id_list(word_ids) -> list[int | None]:
    """word_ids as a list with None for "no word": accepts a tensor row (anything with `tolist`),
    and negative ids (the collator pads word_ids with -1) as None."""
    if hasattr(word_ids, "tolist"):
        word_ids = word_ids.tolist()
    return [None if w is None or w < 0 else int(w) for w in word_ids]


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int], *,
                 label_all_subwords: bool = False,
                 continuation: Mapping[int, int] | None = None) -> list[int]:
    """Subword label ids for one sequence.

    word_ids[t] is the index (into word_labels) of the word token t came from, None (or a
    negative number) for special tokens and padding. The first subword of a word gets the word's
    label. The others get -100 (label_all_subwords=False) or the word's label again; with
    `continuation` (e.g. the id of B-X -> the id of I-X) the later subwords of a word get the
    mapped label so that the subword sequence is itself valid BIO.
    """
    out: list[int] = []
    prev: int | None = None
    for t, w in enumerate(word_id_list(word_ids)):
        if w is None:
            out.append(IGNORE_INDEX)
        elif w != prev:
            if not 0 <= w < len(word_labels):
                raise ValueError(f"token {t} points at word {w}, but there are {len(word_labels)} words")
            out.append(int(word_labels[w]))
        elif label_all_subwords:
            lab = int(word_labels[w])
            out.append(continuation.get(lab, lab) if continuation else lab)
        else:
            out.append(IGNORE_INDEX)
        prev = w
    return out


def align_window_labels(word_ids: Sequence[int | None], word_labels: Sequence[int],
                        label_names: Sequence[str], label_all_subwords: bool = False,
                        scheme: str | None = None) -> list[int]:
    """Subword label ids of one window (see `align_labels`).

    scheme: "bio", "bioes" or "plain"; None detects it from `label_names` (data/formats.py's
    `detect_scheme`). For entity tags, a window that starts inside an entity (its first labelled
    subword carries I-X or E-X) gets B-X there (S-X for an E-X in BIOES); in BIOES a window whose
    last labelled subword carries B-X / I-X gets S-X / E-X, so that the window is a well-formed
    tag sequence by itself. With label_all_subwords the later subwords of a B-X word get I-X
    (BIO), or the word's own tag (plain). Plain tags are never rewritten.
    """
    scheme = detect_scheme(label_names) if scheme is None else normalize_scheme(scheme)
    index = {lab: i for i, lab in enumerate(label_names)}
    continuation = None
    if label_all_subwords and scheme == "bioes":
        raise ValueError("label_all_subwords needs BIO tags (a BIOES word's later subwords "
                         "have no single well-formed tag); use first-subword labels")
    if label_all_subwords and scheme == "bio":
        continuation = {i: index.get("I-" + lab[2:], i) for i, lab in enumerate(label_names)
                        if lab.startswith("B-")}
    out = align_labels(word_ids, word_labels, label_all_subwords=label_all_subwords,
                       continuation=continuation)
    labelled = [t for t, v in enumerate(out) if v != IGNORE_INDEX]
    if labelled and scheme != "plain":
        first, last = labelled[0], labelled[-1]
        name = label_names[out[first]]
        if name[:2] in ("I-", "E-"):
            fix = ("B-" if name[0] == "I" else "S-") + name[2:]
            if fix in index:
                out[first] = index[fix]
        name = label_names[out[last]]
        if scheme == "bioes" and name[:2] in ("B-", "I-"):  # a window cut inside an entity: close it
            fix = ("S-" if name[0] == "B" else "E-") + name[2:]
            if fix in index:
                out[last] = index[fix]
    return out


# Words in raw text: URLs, @mentions / #hashtags and words (with inner ' or -), else one symbol.
_WORD = re.compile(r"https?://\S+|www\.\S+|[@#]?\w+(?:['\u2019\-]\w+)*|[^\w\s]")


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) for the words of a raw text, end exclusive (character offsets)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


# ----------------------------------------------------------------------------------------------
# batches


class BucketedBatches:
    """Batches of examples of similar length; item i is a list of examples (one batch).

    Every epoch: permute the examples with a seeded generator, cut the permutation into chunks
    of `batch_size * bucket_factor`, sort each chunk by length and cut it into batches. The
    number of batches, ceil(N / batch_size) when N is a multiple of the chunk size, is computed
    the same way every epoch (`len`), so the Trainer's step -> batch map stays fixed.
    """

    def __init__(self, examples: Sequence[dict[str, Any]], batch_size: int, seed: int = 0,
                 bucket_factor: int = 50,  # 50 batches per sort chunk: torchtext BucketIterator's
                 length_key: str = "input_ids"):  # 100*batch pool is similar; random enough here
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not examples:
            raise ValueError("no examples to batch")
        self.examples, self.batch_size, self.seed = list(examples), batch_size, seed
        self.bucket_factor, self.length_key = bucket_factor, length_key
        self._batches: list[list[int]] = []
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        order = list(range(len(self.examples)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        chunk = self.batch_size * self.bucket_factor
        batches = []
        for c in range(0, len(order), chunk):
            part = sorted(order[c:c + chunk], key=lambda i: len(self.examples[i][self.length_key]))
            batches.extend(part[k:k + self.batch_size] for k in range(0, len(part), self.batch_size))
        self._batches = batches

    def __len__(self) -> int:
        return len(self._batches)

    def __getitem__(self, i: int) -> list[dict[str, Any]]:
        return [self.examples[k] for k in self._batches[i]]


class FinetuneCollator:
    """[batch] (the Trainer reads one BucketedBatches item per step) or a list of examples ->
    padded tensors; fields named in `list_fields` stay Python lists (one entry per row)."""

    def __init__(self, pad_id: int, list_fields: Sequence[str] = ("spans",)):
        self.pad_id, self.list_fields = pad_id, tuple(list_fields)

    def __call__(self, items: Sequence) -> dict[str, Any]:
        if len(items) == 1 and isinstance(items[0], list):
            items = items[0]  # one bucketed batch
        lists = {k: [e[k] for e in items] for k in self.list_fields if k in items[0]}
        plain = [{k: v for k, v in e.items() if k not in lists} for e in items]
        out: dict[str, Any] = pad_examples(plain, self.pad_id)
        out.update(lists)
        return out
