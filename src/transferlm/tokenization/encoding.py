"""Encodings and the post-processing every tokenizer shares.

SEED (to be completed by the tokenization work): the `Encoding` fields and the `Tokenizer`
interface below are the contract; subclasses implement `_encode_text` and the look-ups, the base
class implements templates, truncation, overflow windows, batching and padding once.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
