"""WordPiece files: vocab.txt, the WordPiece tokenizer.json, and folders of both (what BERT ships).

* vocab.txt (one token per line, id = line number - 1): read with clear errors (a duplicate
  names the file and both lines; a missing special token names the file and the token; a byte
  that is not UTF-8 names the file and line), written atomically.
* tokenizer.json for WordPiece, in the layout ``tokenizers`` reads and writes (normalizer
  BertNormalizer, pre_tokenizer BertPreTokenizer, model WordPiece, post_processor
  TemplateProcessing or BertProcessing, decoder WordPiece, added_tokens), both ways.
* `save_wordpiece` / `load_wordpiece`: a folder as transformers' BertTokenizerFast reads it.

What it does not do: choose between tokenizer families (`io.load_tokenizer`), or BPE's files (io/bpe.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping

from ...fileio import atomic_write_text
from ..encoding import Template
from ..normalize import WHITESPACE, BertNormalizer
from ..wordpiece import SPECIAL_TOKENS, WordPieceConfig, WordPieceTokenizer
from . import TokenizerFileError, decode_line, read_json

_TRAILING = "".join(WHITESPACE)


# ---------------------------------------------------------------------------------------------
# vocab.txt


def read_vocab_txt(path: str | os.PathLike, required: Iterable[str] = ()) -> dict[str, int]:
    """token -> id (the line number, from 0). Trailing whitespace of a line is not part of the
    token (as in tokenizers and google-research/bert)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such vocabulary file")
    vocab: dict[str, int] = {}
    first_line: dict[str, int] = {}
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            tok = decode_line(raw, path, lineno).rstrip(_TRAILING)
            if not tok:
                raise TokenizerFileError(f"{path}:{lineno}: empty line; expected one token per line")
            if tok in first_line:
                raise TokenizerFileError(f"{path}:{lineno}: duplicate entry {tok!r}, already on line "
                                         f"{first_line[tok]}; expected each token once")
            first_line[tok] = lineno
            vocab[tok] = lineno - 1
    if not vocab:
        raise TokenizerFileError(f"{path}: empty vocabulary; expected one token per line")
    for tok in required:
        if tok not in vocab:
            raise TokenizerFileError(f"{path}: missing special token {tok!r}; expected it on a line of its own")
    return vocab


def write_vocab_txt(path: str | os.PathLike, vocab: Mapping[str, int]) -> None:
    """One token per line in id order; the ids must be 0..n-1."""
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    for k, (tok, i) in enumerate(by_id):
        if i != k:
            raise ValueError(f"{path}: vocabulary ids must be 0..{len(by_id) - 1} without gaps; "
                             f"id {k} is missing (next is {i}, {tok!r})")
        if not tok or tok != tok.rstrip(_TRAILING) or "\n" in tok or "\r" in tok:
            raise ValueError(f"{path}: token {tok!r} (id {i}) cannot be written to vocab.txt")
    atomic_write_text(path, "".join(f"{t}\n" for t, _ in by_id))


# ---------------------------------------------------------------------------------------------
# tokenizer.json (WordPiece)


def wordpiece_to_hf_json(tok: WordPieceTokenizer) -> dict:
    """The tokenizer.json object of a WordPiece tokenizer (tokenizers' layout)."""
    n = tok.normalizer
    added = [{"id": tok.vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": special} for t, special in tok.added_tokens.items()]
    added.sort(key=lambda d: d["id"])
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": n.to_hf_json(),
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": tok.template.to_hf_json(tok.token_to_id),
        "decoder": {"type": "WordPiece", "prefix": tok.config.prefix, "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": tok.config.unk_token,
                  "continuing_subword_prefix": tok.config.prefix,
                  "max_input_chars_per_word": tok.config.max_input_chars_per_word,
                  "vocab": dict(sorted(tok.vocab.items(), key=lambda kv: kv[1]))},
    }


def _expect(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise TokenizerFileError(f"{where}: {what}")


def wordpiece_from_hf_json(obj: dict, where: str = "tokenizer.json",
                           special_tokens: Mapping[str, str] | None = None) -> WordPieceTokenizer:
    """A WordPiece tokenizer from a parsed tokenizer.json (`where` names the file in errors)."""
    model = obj.get("model") or {}
    _expect(model.get("type") == "WordPiece", where, f"model.type is {model.get('type')!r}; expected 'WordPiece'")
    vocab = model.get("vocab")
    _expect(isinstance(vocab, dict) and all(isinstance(v, int) for v in vocab.values()), where,
            "model.vocab must be an object mapping tokens to integer ids")
    config = WordPieceConfig(unk_token=model.get("unk_token", "[UNK]"),
                             prefix=model.get("continuing_subword_prefix", "##"),
                             max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)))
    norm = obj.get("normalizer")
    _expect(norm is not None and norm.get("type") == "BertNormalizer", where,
            f"normalizer is {(norm or {}).get('type')!r}; expected 'BertNormalizer'")
    normalizer = BertNormalizer(lowercase=bool(norm.get("lowercase", True)), strip_accents=norm.get("strip_accents"),
                                clean_text=bool(norm.get("clean_text", True)),
                                handle_chinese_chars=bool(norm.get("handle_chinese_chars", True)))
    pre = obj.get("pre_tokenizer")
    _expect(pre is not None and pre.get("type") == "BertPreTokenizer", where,
            f"pre_tokenizer is {(pre or {}).get('type')!r}; expected 'BertPreTokenizer'")
    dec = obj.get("decoder")
    _expect(dec is None or dec.get("type") == "WordPiece", where,
            f"decoder is {dec.get('type') if dec else None!r}; expected 'WordPiece'")
    try:
        template = Template.from_hf_json(obj.get("post_processor"), where)
    except (KeyError, TypeError) as e:
        raise TokenizerFileError(f"{where}: post_processor is malformed ({e!r})") from None
    added = obj.get("added_tokens") or []
    added_contents: dict[str, bool] = {}
    for k, t in enumerate(added):
        _expect(isinstance(t, dict) and isinstance(t.get("content"), str) and isinstance(t.get("id"), int), where,
                f"added_tokens[{k}] must have a string 'content' and an integer 'id'")
        _expect(vocab.get(t["content"]) == t["id"], where,
                f"added token {t['content']!r} has id {t['id']}, but the vocabulary gives {vocab.get(t['content'])}")
        for flag in ("lstrip", "rstrip", "single_word", "normalized"):
            _expect(not t.get(flag), where, f"added token {t['content']!r}: {flag}=true is not supported "
                    "(added tokens are matched in the raw text)")
        added_contents[t["content"]] = bool(t.get("special", False))
    if special_tokens is None:
        present = {t["content"] for t in added if t.get("special")} or set(vocab)
        special_tokens = {r: t for r, t in SPECIAL_TOKENS.items() if t in present}
        special_tokens["unk"] = config.unk_token
        pad = (obj.get("padding") or {}).get("pad_token")
        if pad in vocab:
            special_tokens["pad"] = pad
        single = [p for p in template.single if p.kind == "special"]
        if single and "cls" not in special_tokens and template.single[0].kind == "special":
            special_tokens["cls"] = template.single[0].value
        if single and "sep" not in special_tokens and template.single[-1].kind == "special":
            special_tokens["sep"] = template.single[-1].value
    trunc = obj.get("truncation") or {}
    try:
        return WordPieceTokenizer(vocab, normalizer=normalizer, config=config, special_tokens=special_tokens,
                                  template=template, added_tokens=added_contents,
                                  model_max_length=trunc.get("max_length"))
    except ValueError as e:
        raise TokenizerFileError(f"{where}: {e}") from None


# ---------------------------------------------------------------------------------------------
# Folders


def save_wordpiece(tok: WordPieceTokenizer, folder: str | os.PathLike) -> None:
    """vocab.txt + tokenizer.json + tokenizer_config.json (what transformers' BertTokenizerFast reads)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_vocab_txt(folder / "vocab.txt", tok.vocab)
    atomic_write_text(folder / "tokenizer.json",
                      json.dumps(wordpiece_to_hf_json(tok), ensure_ascii=False, indent=2) + "\n")
    cfg = {"tokenizer_class": "BertTokenizer", "do_lower_case": tok.normalizer.lowercase,
           "strip_accents": tok.normalizer.strip_accents,
           "tokenize_chinese_chars": tok.normalizer.handle_chinese_chars,
           **{f"{role}_token": t for role, t in tok.special_tokens.items()}}
    if tok.model_max_length:
        cfg["model_max_length"] = tok.model_max_length
    atomic_write_text(folder / "tokenizer_config.json", json.dumps(cfg, ensure_ascii=False, indent=2) + "\n")


def _config_roles(folder: Path) -> tuple[dict, dict[str, str]]:
    cfg_path = folder / "tokenizer_config.json"
    if not cfg_path.is_file():
        return {}, {}
    cfg = read_json(cfg_path)
    roles = {}
    for role in ("unk", "cls", "sep", "pad", "mask"):
        v = cfg.get(f"{role}_token")
        if isinstance(v, dict):  # transformers sometimes writes AddedToken objects
            v = v.get("content")
        if isinstance(v, str):
            roles[role] = v
    return cfg, roles


def load_wordpiece(path: str | os.PathLike) -> WordPieceTokenizer:
    """A WordPiece tokenizer from a folder (tokenizer.json, else vocab.txt + tokenizer_config.json)
    or from a tokenizer.json or vocab.txt file."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".json":
            return wordpiece_from_hf_json(read_json(path), str(path))
        return _from_vocab_txt(path, {}, {})
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such tokenizer folder or file")
    if (path / "tokenizer.json").is_file():
        return wordpiece_from_hf_json(read_json(path / "tokenizer.json"), str(path / "tokenizer.json"))
    if (path / "vocab.txt").is_file():
        cfg, roles = _config_roles(path)
        return _from_vocab_txt(path / "vocab.txt", cfg, roles)
    raise FileNotFoundError(f"{path}: expected tokenizer.json or vocab.txt in the folder")


def _from_vocab_txt(vocab_path: Path, cfg: dict, roles: dict[str, str]) -> WordPieceTokenizer:
    unk = roles.get("unk", "[UNK]")
    vocab = read_vocab_txt(vocab_path, required=[unk, *roles.values()])
    if not roles:
        roles = {r: t for r, t in SPECIAL_TOKENS.items() if t in vocab}
    lowercase = bool(cfg.get("do_lower_case", True))
    normalizer = BertNormalizer(lowercase=lowercase, strip_accents=cfg.get("strip_accents"),
                                handle_chinese_chars=bool(cfg.get("tokenize_chinese_chars", True)))
    try:
        return WordPieceTokenizer(vocab, normalizer=normalizer, config=WordPieceConfig(unk_token=unk),
                                  special_tokens=roles, model_max_length=cfg.get("model_max_length"))
    except ValueError as e:
        raise TokenizerFileError(f"{vocab_path}: {e}") from None


__all__ = ["load_wordpiece", "read_vocab_txt", "save_wordpiece", "wordpiece_from_hf_json", "wordpiece_to_hf_json",
           "write_vocab_txt"]
