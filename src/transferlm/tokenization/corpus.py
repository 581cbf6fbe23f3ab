"""Training text for the learners: lines of UTF-8 files, and the word counts each learner starts from.

* `iter_text_lines`: the lines of UTF-8 text files, one file after the other; a byte that is not
  UTF-8 raises an error naming the file, line and column (never skipped).
* `count_words`: WordPiece's words, BERT-normalized and pre-tokenized (normalize.py) -> count.
* `count_byte_level_words`: byte-level BPE's pre-tokens (the GPT-2 regex, or another of
  `bytelevel.PATTERNS`) of whole lines, newline included, spelled as byte symbols -> count: what
  `tokenizers`' BpeTrainer counts with the ByteLevel pre-tokenizer.
* `count_whitespace_words`: Jurafsky & Martin's words, split on whitespace -> count.

What it does not do: learn (merges.py), or read tokenizer files (io/).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .io import decode_line
from .normalize import BertNormalizer


def iter_text_lines(files: Sequence[str | os.PathLike] | str | os.PathLike, *,
                    keep_newline: bool = False) -> Iterator[str]:
    """Lines of UTF-8 text files, one file after the other: without the line end ("\\n" or
    "\\r\\n"), or with `keep_newline` exactly as in the file (the last line may have none)."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                line = decode_line(raw, path, lineno)
                yield line if keep_newline else line.rstrip("\r\n")


def count_words(texts: Iterable[str], normalizer: BertNormalizer | None = None) -> Counter:
    """How often each pre-tokenized (normalized) word occurs in `texts` (WordPiece's learner)."""
    normalizer = normalizer or BertNormalizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(normalizer.split_columns(text)[0])
    return counts


def count_byte_level_words(files: Iterable[str | os.PathLike], progress: bool = False,
                           pattern: str = "gpt2") -> dict[str, int]:
    """Count the pre-tokens of text files, spelled as byte symbols (what byte-level BPE merges).

    Files are split into lines on '\\n' (kept), like `tokenizers`' trainer, and each line is
    pre-split with `pattern`; a line that is not UTF-8 raises an error naming the file and line.
    """
    from .bytelevel import PATTERNS, compile_pattern, to_byte_symbols

    findall = compile_pattern(PATTERNS.get(pattern, pattern)).findall
    files = [Path(f) for f in files]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(f.stat().st_size for f in files if f.is_file()), desc="count words", unit="B",
                   unit_scale=True)
    piece_counts: Counter = Counter()
    for line in iter_text_lines(files, keep_newline=True):
        piece_counts.update(findall(line))
        if bar is not None:
            bar.update(len(line.encode("utf-8")))
    if bar is not None:
        bar.close()
    out: Counter = Counter()
    for piece, n in piece_counts.items():
        out[to_byte_symbols(piece)] += n
    return dict(out)


def count_whitespace_words(text: str) -> dict[str, int]:
    """Words split on whitespace -> count, in order of first occurrence (J&M's learner numbers
    pairs in the order it first sees them)."""
    return dict(Counter(text.split()))


__all__ = ["count_byte_level_words", "count_whitespace_words", "count_words", "iter_text_lines"]
