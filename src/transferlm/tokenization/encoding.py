"""Encodings and the post-processing every tokenizer shares.

What this file does: the `Encoding` record (ids, tokens, offsets, word ids, segment ids, masks,
overflowing windows) and the `Tokenizer` base class whose `encode` / `encode_batch` implement,
ONCE for every tokenizer of the package:

* the special-token template (template.py's `Template`, Hugging Face's TemplateProcessing: how
  ``[CLS] $A [SEP] $B:1 [SEP]:1`` wraps one or two sequences; type ids, sequence ids, mask);
* truncation (``longest_first`` / ``only_first`` / ``only_second``) and overflow into windows of
  ``max_length`` tokens that overlap by ``stride`` tokens, each window wrapped by the template;
* padding, only when asked (to ``max_length`` / ``pad_to``, or to the longest of a batch), as
  ``tokenizers`` and transformers pad only when asked.

The semantics follow ``tokenizers`` 0.2x (``TruncationParams``, ``Encoding::truncate``,
``Encoding::merge_with``, ``TemplateProcessing``), so that our ids, offsets, type ids and
overflowing windows are equal to theirs; ``tests/test_encoding.py`` checks it against the library.

What it does not do: it knows no vocabulary or segmentation algorithm (a subclass implements
`_encode_text`: one text in, tokens without template tokens out, offsets into that text; added
tokens written in the text are added.py's); the template syntax is template.py's; it
truncates on the right only (``tokenizers`` also offers left truncation); overflowing windows are
one flat list (``tokenizers`` also nests duplicates of some pair windows inside others).
"""

from __future__ import annotations

import abc
import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

from .template import Piece, Template  # noqa: F401  (Piece: importable from here, as before)

Truncation = Literal["longest_first", "only_first", "only_second"]
_TRUNCATIONS = (None, "longest_first", "only_first", "only_second")
# transformers' spellings: True = "longest", False = "do_not_pad" = None.
Padding = Literal["longest", "max_length", "do_not_pad"] | bool | None


def _padding_strategy(padding) -> str | None:
    """"longest", "max_length" or None for any of the accepted spellings; a clear error otherwise."""
    if padding is True:
        return "longest"
    if padding is None or padding is False or padding == "do_not_pad":
        return None
    if padding in ("longest", "max_length"):
        return padding
    raise ValueError(f"encode_batch: padding must be 'longest' (or True), 'max_length', or None (or False, "
                     f"'do_not_pad'), got {padding!r}")


@dataclass
class Encoding:
    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]  # character offsets into the text each token came from; (0, 0) for specials
    word_ids: list[int | None]  # index of the pre-tokenized word within its sequence; None for specials
    type_ids: list[int]  # segment ids: 0 for the first sequence, 1 for the second
    special_tokens_mask: list[int]  # 1 where the token was added by the template
    attention_mask: list[int]  # 1 for real tokens, 0 for padding
    sequence_ids: list[int | None]  # 0 / 1 for tokens of text A / B; None for specials and padding
    overflowing: list["Encoding"] = field(default_factory=list)  # further windows of a long input

    def __len__(self) -> int:
        return len(self.ids)

    # -- construction helpers used by tokenizers ------------------------------------------------
    @classmethod
    def empty(cls) -> "Encoding":
        return cls([], [], [], [], [], [], [], [])

    @classmethod
    def from_tokens(cls, ids: list[int], tokens: list[str], offsets: list[tuple[int, int]],
                    word_ids: list[int | None]) -> "Encoding":
        """A text's tokens before post-processing: segment 0, no specials, all attended."""
        n = len(ids)
        if not (len(tokens) == len(offsets) == len(word_ids) == n):
            raise ValueError(f"Encoding.from_tokens: lengths differ: ids {n}, tokens {len(tokens)}, "
                             f"offsets {len(offsets)}, word_ids {len(word_ids)}")
        return cls(ids, tokens, offsets, word_ids, [0] * n, [0] * n, [1] * n, [0] * n)

    def _slice(self, start: int, stop: int) -> "Encoding":
        return Encoding(self.ids[start:stop], self.tokens[start:stop], self.offsets[start:stop],
                        self.word_ids[start:stop], self.type_ids[start:stop],
                        self.special_tokens_mask[start:stop], self.attention_mask[start:stop],
                        self.sequence_ids[start:stop])

    def _extend(self, other: "Encoding") -> None:
        self.ids += other.ids
        self.tokens += other.tokens
        self.offsets += other.offsets
        self.word_ids += other.word_ids
        self.type_ids += other.type_ids
        self.special_tokens_mask += other.special_tokens_mask
        self.attention_mask += other.attention_mask
        self.sequence_ids += other.sequence_ids

    # -- look-ups (the ones QA and tagging need) -----------------------------------------------
    def char_to_token(self, char_index: int, sequence_index: int = 0) -> int | None:
        """Index of the token of sequence `sequence_index` whose offsets contain `char_index`."""
        for i, ((s, e), seq) in enumerate(zip(self.offsets, self.sequence_ids)):
            if seq == sequence_index and s <= char_index < e:
                return i
        return None

    def word_to_tokens(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        """(first, last + 1) token indices of a word of one sequence, or None if it has no token."""
        hits = [i for i, (w, seq) in enumerate(zip(self.word_ids, self.sequence_ids))
                if w == word_index and seq == sequence_index]
        return (hits[0], hits[-1] + 1) if hits else None


# ---------------------------------------------------------------------------------------------
# Truncation and windows (tokenizers' utils/truncation.rs and Encoding::truncate)


def _windows(enc: Encoding, max_len: int, stride: int) -> list[Encoding]:
    """Cut `enc` into windows of at most `max_len` tokens, consecutive windows sharing `stride`
    tokens; the first window is the truncated encoding, the rest overflow."""
    n = len(enc)
    if max_len >= n:
        return [enc]
    if max_len <= 0:
        raise ValueError("truncation leaves no room for the text: max_length must exceed the number "
                         "of special tokens the template adds")
    if stride >= max_len:
        raise ValueError(f"stride ({stride}) must be smaller than the room left for a sequence "
                         f"({max_len} tokens: max_length minus the template's special tokens)")
    out = []
    for start in range(0, n, max_len - stride):
        stop = min(start + max_len, n)
        out.append(enc._slice(start, stop))
        if stop == n:
            break
    return out


def _truncate(a: Encoding, b: Encoding | None, max_length: int, strategy: Truncation, stride: int
              ) -> tuple[list[Encoding], list[Encoding] | None]:
    """Windows of sequence A (and B) so that A + B fit `max_length` (specials already subtracted)."""
    total = len(a) + (len(b) if b is not None else 0)
    if total <= max_length:
        return [a], ([b] if b is not None else None)
    to_remove = total - max_length
    if strategy == "longest_first":
        if b is None:
            return _windows(a, max_length, stride), None
        # Split the room: the shorter sequence keeps its length if it fits in half; otherwise each
        # gets half (the second sequence the odd token), as tokenizers does.
        n1, n2 = len(a), len(b)
        swap = n1 > n2
        if swap:
            n1, n2 = n2, n1
        n2 = n1 if n1 > max_length else max(n1, max_length - n1)
        if n1 + n2 > max_length:
            n1 = max_length // 2
            n2 = n1 + max_length % 2
        if swap:
            n1, n2 = n2, n1
        return _windows(a, n1, stride), _windows(b, n2, stride)
    if strategy in ("only_first", "only_second"):
        if strategy == "only_second" and b is None:
            raise ValueError("truncation='only_second' needs a pair of sequences")
        target = a if strategy == "only_first" else b
        if len(target) <= to_remove:
            raise ValueError(f"truncation={strategy!r}: the sequence to truncate ({len(target)} tokens) is "
                             f"too short to bring the input down to max_length (must remove {to_remove})")
        w = _windows(target, len(target) - to_remove, stride)
        return (w, [b] if b is not None else None) if strategy == "only_first" else ([a], w)
    raise ValueError(f"unknown truncation strategy {strategy!r}; expected 'longest_first', "
                     "'only_first', 'only_second' or None")


# ---------------------------------------------------------------------------------------------
# Batches


@contextmanager
def _gc_paused():
    """Pause Python's cyclic garbage collector while a batch is encoded.

    Encoding allocates millions of small lists and tuples with no reference cycles among them.
    With the collector on, every few hundred allocations start a collection that walks the young
    objects, and the batch's objects are walked again as they age: half the time of a large batch
    (measured on PTB train: 0.7 -> 1.5 MB/s). On the way out, freeze() + unfreeze() hand the
    batch's objects straight to the oldest generation (two list splices), so that turning the
    collector back on does not walk them all at once (another 25% on 11 MB of text); the next
    full collection sees them, as it sees every long-lived object."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


# ---------------------------------------------------------------------------------------------
# The base class


class Tokenizer(abc.ABC):
    """Base of every tokenizer: subclasses segment text, this class post-processes.

    A subclass sets `special_tokens` (role -> token string, e.g. ``{"unk": "[UNK]", "cls": "[CLS]",
    "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]"}``) and `template`, and implements
    `_encode_text` (no special tokens; offsets into the text given; `word_ids` set), `decode`,
    `vocab_size` and `save_pretrained` / `from_pretrained`, and fills `vocab` (token -> id) and
    `_id_to_token` (id -> token), which the look-ups read.
    """

    special_tokens: dict[str, str]
    template: Template
    vocab: dict[str, int]
    _id_to_token: dict[int, str]

    # -- what subclasses implement -----------------------------------------------------------
    @abc.abstractmethod
    def _encode_text(self, text: str) -> Encoding:
        """Tokens of one text without special tokens; offsets are character offsets into `text`."""

    @abc.abstractmethod
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str: ...

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def id_to_token(self, i: int) -> str | None:
        return self._id_to_token.get(i)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int: ...

    @abc.abstractmethod
    def save_pretrained(self, folder) -> None:
        """Write the tokenizer's own files and a Hugging Face tokenizer.json into `folder`."""

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, folder): ...

    def _encode_sequence(self, text: str) -> Encoding:
        if not isinstance(text, str):
            raise TypeError(f"expected a str to encode, got {type(text).__name__}")
        return self._encode_text(text)

    # -- post-processing --------------------------------------------------------------------------
    def num_special_tokens_to_add(self, is_pair: bool = False) -> int:
        return self.template.num_special_tokens(is_pair)

    def _special_id(self, token: str) -> int:
        i = self.token_to_id(token)
        if i is None:
            raise ValueError(f"special token {token!r} of the template is not in the vocabulary")
        return i

    def _template_plan(self, is_pair: bool, add_special_tokens: bool) -> list:
        """The template as runs: ("A"/"B", type id) for a sequence, and for the special tokens in
        between (ids, tokens, type ids). Cached per (template, is_pair, add_special_tokens)."""
        key = (is_pair, add_special_tokens)
        cache = self.__dict__.get("_plans")
        if cache is None or cache[0] is not self.template:  # (re)built when the template changes
            cache = self.__dict__["_plans"] = (self.template, {})
        plan = cache[1].get(key)
        if plan is None:
            plan = []
            for p in self.template.pieces(is_pair):
                if p.kind == "sequence":
                    plan.append((p.value, p.type_id))
                elif add_special_tokens:
                    if not plan or isinstance(plan[-1][0], str):
                        plan.append(([], [], []))
                    ids, toks, tys = plan[-1]
                    ids.append(self._special_id(p.value))
                    toks.append(p.value)
                    tys.append(p.type_id)
            cache[1][key] = plan
        return plan

    def _apply_template(self, a: Encoding, b: Encoding | None, add_special_tokens: bool) -> Encoding:
        ids: list[int] = []
        tokens: list[str] = []
        offsets: list[tuple[int, int]] = []
        word_ids: list[int | None] = []
        type_ids: list[int] = []
        special: list[int] = []
        attention: list[int] = []
        sequence_ids: list[int | None] = []
        for run in self._template_plan(b is not None, add_special_tokens):
            first = run[0]
            if isinstance(first, str):  # a sequence
                seq = a if first == "A" else b
                n = len(seq.ids)
                ids += seq.ids
                tokens += seq.tokens
                offsets += seq.offsets
                word_ids += seq.word_ids
                type_ids += [run[1]] * n
                special += seq.special_tokens_mask
                attention += seq.attention_mask
                sequence_ids += [0 if first == "A" else 1] * n
            else:  # special tokens
                k = len(first)
                ids += first
                tokens += run[1]
                offsets += [(0, 0)] * k
                word_ids += [None] * k
                type_ids += run[2]
                special += [1] * k
                attention += [1] * k
                sequence_ids += [None] * k
        return Encoding(ids, tokens, offsets, word_ids, type_ids, special, attention, sequence_ids)

    def _pad(self, enc: Encoding, length: int) -> None:
        pad = self.special_tokens.get("pad")
        if pad is None:
            raise ValueError(f"{type(self).__name__} has no 'pad' special token, so it cannot pad")
        for e in [enc, *enc.overflowing]:
            k = length - len(e)
            if k > 0:
                # tokenizers pads with type id 0, special-tokens mask 1 and attention mask 0.
                e._extend(Encoding([self._special_id(pad)] * k, [pad] * k, [(0, 0)] * k, [None] * k, [0] * k,
                                   [1] * k, [0] * k, [None] * k))

    def _post_process(self, a: Encoding, b: Encoding | None, *, add_special_tokens: bool,
                      max_length: int | None, truncation: Truncation | None, stride: int,
                      return_overflowing: bool) -> Encoding:
        if truncation not in _TRUNCATIONS:
            raise ValueError(f"unknown truncation strategy {truncation!r}; expected 'longest_first', "
                             "'only_first', 'only_second' or None")
        if stride < 0:
            raise ValueError(f"stride must be >= 0, got {stride}")
        if max_length is not None and truncation is not None:
            room = max_length - (self.num_special_tokens_to_add(b is not None) if add_special_tokens else 0)
            wa, wb = _truncate(a, b, room, truncation, stride)
        else:
            wa, wb = [a], ([b] if b is not None else None)
        if wb is None:
            main = self._apply_template(wa[0], None, add_special_tokens)
            if return_overflowing:
                main.overflowing = [self._apply_template(w, None, add_special_tokens) for w in wa[1:]]
            return main
        main = self._apply_template(wa[0], wb[0], add_special_tokens)
        if return_overflowing:
            # The order of tokenizers' Encoding::merge_with: each later A window with every B
            # window, then the first A window with each later B window.
            pairs = [(x, y) for x in wa[1:] for y in wb] + [(wa[0], y) for y in wb[1:]]
            main.overflowing = [self._apply_template(x, y, add_special_tokens) for x, y in pairs]
        return main

    def encode(self, text: str, pair: str | None = None, *, add_special_tokens: bool = True,
               max_length: int | None = None, truncation: Truncation | None = "longest_first",
               stride: int = 0, return_overflowing: bool = False,
               padding: Literal["max_length"] | None = None, pad_to: int | None = None) -> Encoding:
        """Encode a text (or a pair of texts) into one `Encoding`.

        Truncation happens only when `max_length` is given: the template's special tokens are
        counted, the rest is cut by `truncation`; with `return_overflowing` the cut-off tokens
        come back in `.overflowing` as further windows overlapping by `stride` tokens, each with
        the template's special tokens. `padding="max_length"` pads (on the right, with the "pad"
        special token) to `pad_to`, or to `max_length` when `pad_to` is None; windows too.
        """
        a = self._encode_sequence(text)
        b = self._encode_sequence(pair) if pair is not None else None
        enc = self._post_process(a, b, add_special_tokens=add_special_tokens, max_length=max_length,
                                 truncation=truncation, stride=stride, return_overflowing=return_overflowing)
        if padding is not None:
            if padding != "max_length":
                raise ValueError(f"encode: padding must be None or 'max_length', got {padding!r} "
                                 "(use encode_batch for 'longest')")
            target = pad_to if pad_to is not None else max_length
            if target is None:
                raise ValueError("padding='max_length' needs max_length or pad_to")
            self._pad(enc, target)
        return enc

    def _encode_texts(self, texts: Sequence[str]) -> list[Encoding]:
        """`_encode_sequence` over many texts; subclasses may override with a faster path."""
        return [self._encode_sequence(t) for t in texts]

    def encode_batch(self, texts: Sequence[str], pairs: Sequence[str] | None = None, *,
                     padding: Padding = None,
                     add_special_tokens: bool = True, max_length: int | None = None,
                     truncation: Truncation | None = "longest_first", stride: int = 0,
                     return_overflowing: bool = False, pad_to: int | None = None) -> list[Encoding]:
        """Encode many texts (or pairs). No padding unless asked, as in ``tokenizers`` (its
        `encode_batch` pads only after `enable_padding()`) and transformers (``padding=False`` is
        the default of a tokenizer call): `padding="longest"` (or True) pads every encoding to the
        longest of the batch (tokenizers' BatchLongest), `"max_length"` to `pad_to` or
        `max_length` (tokenizers' Fixed), None / False / "do_not_pad" not at all."""
        if isinstance(texts, str):
            raise TypeError("encode_batch takes a list of texts; use encode for one text")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"encode_batch: {len(texts)} texts but {len(pairs)} pairs")
        padding = _padding_strategy(padding)
        if padding == "max_length" and pad_to is None and max_length is None:
            raise ValueError("padding='max_length' needs max_length or pad_to")
        with _gc_paused():
            firsts = self._encode_texts(texts)
            seconds = self._encode_texts(pairs) if pairs is not None else [None] * len(firsts)
            out = [self._post_process(a, b, add_special_tokens=add_special_tokens, max_length=max_length,
                                      truncation=truncation, stride=stride,
                                      return_overflowing=return_overflowing)
                   for a, b in zip(firsts, seconds)]
        if padding is None:
            return out
        target = max((len(e) for e in out), default=0) if padding == "longest" else \
            (pad_to if pad_to is not None else max_length)
        for e in out:
            self._pad(e, target)
        return out

    # -- conveniences -------------------------------------------------------------------------------
    def special_token_id(self, role: str) -> int:
        """Id of the special token with a role ("pad", "cls", ...); a clear error if it has none."""
        if role not in self.special_tokens:
            raise KeyError(f"{type(self).__name__} has no {role!r} special token "
                           f"(it has: {', '.join(self.special_tokens) or 'none'})")
        return self._special_id(self.special_tokens[role])

    def decode_batch(self, batch: Iterable[list[int]], skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in batch]


__all__ = ["Encoding", "Padding", "Piece", "Template", "Tokenizer", "Truncation"]
