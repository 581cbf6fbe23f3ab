"""Byte-level BPE files: vocab.json + merges.txt (GPT-2's) and tokenizer.json (Hugging Face's).

* vocab.json (token -> id) and merges.txt (``#version: 0.2``, then ``a b`` per line, rank = line
  order), read with errors that name the file and line (a symbol missing from the vocabulary, a
  line that is not two symbols, bad UTF-8) and written atomically.
* tokenizer.json with a BPE model, both ways: model (vocab, merges as ``[a, b]`` or the older
  ``"a b"``), added tokens, the pre-tokenizer (ByteLevel = GPT-2's regex; Digits + ByteLevel =
  SmolLM's; Split(regex) + ByteLevel(use_regex=false) for any other, Llama-3's among them), the
  post-processor (`Template`) and the ByteLevel decoder; settings we do not support are an error.
* `save_bpe` / `load_bpe`: a folder (tokenizer.json, vocab.json + merges.txt,
  tokenizer_config.json with the special-token roles) as transformers' PreTrainedTokenizerFast
  reads it.

What it does not do: GGUF (io/gguf.py), or encode anything (bpe.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ...fileio import atomic_write_bytes
from ..added import AddedToken
from ..bpe import ROLES, ByteLevelBPETokenizer
from ..bytelevel import PATTERNS
from ..template import Template
from . import TokenizerFileError, decode_text, read_json


# ---------------------------------------------------------------------------------------------
# vocab.json + merges.txt


def read_vocab_json(path: str | os.PathLike) -> dict[str, int]:
    """GPT-2's vocab.json: token -> non-negative id, each id once."""
    path = Path(path)
    obj = read_json(path)  # a JSON object, or an error naming the line
    for k, v in obj.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise TokenizerFileError(f"{path}: token {k!r} has id {v!r}; expected a non-negative integer")
    if len(set(obj.values())) != len(obj):
        raise TokenizerFileError(f"{path}: two tokens share one id")
    return obj


def read_merges_txt(path: str | os.PathLike, vocab: Mapping[str, int]) -> list[tuple[str, str]]:
    """GPT-2's merges.txt: an optional '#version' line, then 'left right' per line, best first."""
    path = Path(path)
    merges = []
    for lineno, line in enumerate(decode_text(path.read_bytes(), path).split("\n"), 1):
        line = line.rstrip("\r")
        if lineno == 1 and line.startswith("#version"):
            continue
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise TokenizerFileError(f"{path}:{lineno}: expected two symbols separated by one space, got {line!r}")
        a, b = parts
        for s in (a, b, a + b):
            if s not in vocab:
                raise TokenizerFileError(f"{path}:{lineno}: merge {a!r} {b!r} names {s!r}, which is not in the vocabulary")
        merges.append((a, b))
    return merges


def save_vocab_merges(tok: ByteLevelBPETokenizer, folder: str | os.PathLike) -> None:
    """vocab.json (token -> id, in id order) and merges.txt (GPT-2's: a version line, one merge a line)."""
    folder = Path(folder)
    vocab = dict(sorted(tok.vocab.items(), key=lambda kv: kv[1]))
    atomic_write_bytes(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in tok.merges]
    atomic_write_bytes(folder / "merges.txt", ("\n".join(lines) + "\n").encode("utf-8"))


def from_vocab_merges(vocab_file: str | os.PathLike, merges_file: str | os.PathLike, **kwargs) -> ByteLevelBPETokenizer:
    """A tokenizer from vocab.json + merges.txt; `kwargs` go to `ByteLevelBPETokenizer`."""
    vocab = read_vocab_json(vocab_file)
    return ByteLevelBPETokenizer(vocab, read_merges_txt(merges_file, vocab), **kwargs)


# ---------------------------------------------------------------------------------------------
# tokenizer.json


def pre_tokenizer_json(pattern_name: str) -> dict:
    """The tokenizer.json pre_tokenizer of a pattern name of `bytelevel.PATTERNS` (or a regex)."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True}
    if pattern_name == "gpt2":
        return byte_level
    if pattern_name == "smollm":
        return {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    regex_src = PATTERNS.get(pattern_name, pattern_name)
    return {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex_src}, "behavior": "Isolated", "invert": False},
            dict(byte_level, use_regex=False),
        ],
    }


def pattern_from_json(pre: dict | None) -> str:
    """The pattern name (or regex) of a tokenizer.json pre_tokenizer; unsupported ones are an error."""
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


def bpe_to_hf_json(tok: ByteLevelBPETokenizer) -> dict:
    """This tokenizer as a Hugging Face tokenizer.json object (`tokenizers.Tokenizer.from_str`)."""
    vocab = dict(sorted(tok.vocab.items(), key=lambda kv: kv[1]))
    # A TemplateProcessing post-processor (also for "no specials": $A / $A $B:1) leaves offsets
    # untrimmed, like ours; tokenizers' ByteLevel post-processor would trim spaces off them.
    post = tok.template.to_hf_json(tok.token_to_id)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": t.id, "content": t.content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": t.special}
            for t in sorted(tok._added, key=lambda t: t.id)
        ],
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer_json(tok.pattern_name),
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": tok.ignore_merges, "vocab": vocab, "merges": [[a, b] for a, b in tok.merges],
        },
    }


def bpe_from_hf_json(obj: dict, special_tokens: Mapping[str, str] | None = None) -> ByteLevelBPETokenizer:
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
    pattern = pattern_from_json(obj.get("pre_tokenizer"))
    template = Template.from_hf_json(obj.get("post_processor"))
    return ByteLevelBPETokenizer(vocab, merges, pattern=pattern, added_tokens=added, special_tokens=special_tokens,
               template=template, ignore_merges=bool(model.get("ignore_merges", False)))


# ---------------------------------------------------------------------------------------------
# Folders


def save_bpe(tok: ByteLevelBPETokenizer, folder: str | os.PathLike) -> None:
    """tokenizer.json, vocab.json + merges.txt, and tokenizer_config.json (the special-token roles)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "tokenizer.json", json.dumps(bpe_to_hf_json(tok), ensure_ascii=False, indent=1).encode("utf-8"))
    save_vocab_merges(tok, folder)
    config = {f"{role}_token": tok for role, tok in tok.special_tokens.items()}
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    atomic_write_bytes(folder / "tokenizer_config.json", json.dumps(config, ensure_ascii=False, indent=1).encode("utf-8"))


def load_bpe(folder: str | os.PathLike) -> ByteLevelBPETokenizer:
    folder = Path(folder)
    special: dict[str, str] = {}
    cfg_path = folder / "tokenizer_config.json"
    if cfg_path.exists():
        cfg = read_json(cfg_path)
        for role in ROLES:
            v = cfg.get(f"{role}_token")
            if isinstance(v, dict):  # transformers writes AddedToken objects sometimes
                v = v.get("content")
            if isinstance(v, str):
                special[role] = v
    if (folder / "tokenizer.json").exists():
        return bpe_from_hf_json(read_json(folder / "tokenizer.json"), special_tokens=special)
    if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        return from_vocab_merges(folder / "vocab.json", folder / "merges.txt", special_tokens=special)
    raise FileNotFoundError(f"{folder}: expected tokenizer.json, or vocab.json and merges.txt")


__all__ = ["bpe_from_hf_json", "bpe_to_hf_json", "from_vocab_merges", "load_bpe", "pattern_from_json",
           "pre_tokenizer_json", "read_merges_txt", "read_vocab_json", "save_bpe", "save_vocab_merges"]
