"""Tokenizer files: what every reader shares, and `load_tokenizer`, which picks the right class.

The file formats of every tokenizer live in this package, one module per family:

* `io.wordpiece`: vocab.txt and the WordPiece tokenizer.json (BERT), folders of both;
* `io.bpe`: vocab.json + merges.txt and the byte-level BPE tokenizer.json, folders of both;
* `io.gguf`: the tokenizer metadata of a GGUF file (llama.cpp's ``tokenizer.ggml.*`` keys).

This module holds what they share: `TokenizerFileError` (every message names the file, and the
line where there is one), UTF-8 decoding with file:line:column errors, `read_json`, and
`load_tokenizer(path)`: tokenizer.json's model type "WordPiece" -> `WordPieceTokenizer`, "BPE" ->
`ByteLevelBPETokenizer`; without tokenizer.json, vocab.txt means WordPiece and vocab.json +
merges.txt byte-level BPE. Writes are atomic (temp file, fsync, os.replace: `fileio`).

What it does not do: training text (corpus.py), or the truncation and padding settings of a
tokenizer.json (here they are arguments of `encode`; the truncation length is kept as
`model_max_length`). The byte-level modules are imported only when a BPE file is met, so that
WordPiece users never pay for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...fileio import atomic_write_bytes, atomic_write_text


class TokenizerFileError(ValueError):
    """A tokenizer or text file that cannot be read; the message names the file (and line)."""


BPEFileError = TokenizerFileError  # the name bpe.py's readers used; one error class for every file


def decode_line(raw: bytes, path: Path | str, lineno: int) -> str:
    """`raw` as UTF-8, or an error naming the file, line, byte and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TokenizerFileError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                 f"{e.start + 1}); expected UTF-8 text") from None


def decode_text(raw: bytes, path: Path | str) -> str:
    """A whole file's bytes as UTF-8; a bad byte is reported with its line and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        line = raw.count(b"\n", 0, e.start) + 1
        raise TokenizerFileError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                 f"{e.start - line_start + 1}); expected UTF-8 text") from None


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from a file; bad UTF-8, bad JSON or another top-level value name the line."""
    path = Path(path)
    text = decode_text(path.read_bytes(), path)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenizerFileError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise TokenizerFileError(f"{path}:1: expected a JSON object, got {type(obj).__name__}")
    return obj


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer of a folder or file, of the right class.

    tokenizer.json decides by its model type ("WordPiece" or "BPE"); without it, vocab.txt means
    WordPiece and vocab.json + merges.txt byte-level BPE."""
    from .wordpiece import load_wordpiece

    path = Path(path)
    if path.is_file():
        if path.suffix == ".json":
            return _from_hf_obj(read_json(path), str(path))
        if path.name.endswith(".txt"):
            return load_wordpiece(path)
        raise TokenizerFileError(f"{path}: expected a tokenizer.json or vocab.txt file, or a folder")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such tokenizer folder or file")
    if (path / "tokenizer.json").is_file():
        obj = read_json(path / "tokenizer.json")
        kind = (obj.get("model") or {}).get("type")
        if kind == "WordPiece":
            return load_wordpiece(path)
        if kind == "BPE":
            from .bpe import load_bpe

            return load_bpe(path)
        return _from_hf_obj(obj, str(path / "tokenizer.json"))
    if (path / "vocab.txt").is_file():
        return load_wordpiece(path)
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        from .bpe import load_bpe

        return load_bpe(path)
    raise FileNotFoundError(f"{path}: expected tokenizer.json, vocab.txt, or vocab.json + merges.txt")


def _from_hf_obj(obj: dict, where: str):
    kind = (obj.get("model") or {}).get("type")
    if kind == "WordPiece":
        from .wordpiece import wordpiece_from_hf_json

        return wordpiece_from_hf_json(obj, where)
    if kind == "BPE":
        from .bpe import bpe_from_hf_json

        return bpe_from_hf_json(obj)
    raise TokenizerFileError(f"{where}: model.type is {kind!r}; expected 'WordPiece' or 'BPE'")


__all__ = ["BPEFileError", "TokenizerFileError", "atomic_write_bytes", "atomic_write_text", "decode_line",
           "decode_text", "load_tokenizer", "read_json"]
