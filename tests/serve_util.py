"""Helpers of the `transferlm serve` tests: a real server on 127.0.0.1 in a thread, and small real
models saved in folders (a classifier and a tagger fine-tuned for a few steps on BBC News / WNUT-16
with their real labels, a tiny random GPT-2 with a byte-level BPE learned on PTB text)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import torch
import uvicorn

from transferlm.data import assets
from transferlm.models import Decoder
from transferlm.models.config import preset
from transferlm.models.encoder import Encoder
from transferlm.pipelines import Tagger, TextClassifier
from transferlm.tokenization.io import load_tokenizer


class Running:
    """uvicorn serving `app` on a free port of 127.0.0.1, in a daemon thread, until close()."""

    def __init__(self, app) -> None:
        self.app = app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> "Running":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _tiny_encoder() -> Encoder:
    # MiniLM's vocabulary (its tokenizer), a 2-layer 64-wide body: fast to train and to run
    torch.manual_seed(0)
    return Encoder(preset("bert-tiny", vocab_size=30522, hidden_size=64, num_heads=2, intermediate_size=128,
                          max_position_embeddings=128))


def first_sentence(article: str) -> str:
    body = article.split("\n", 1)[-1].strip() or article
    return body.split(". ")[0].strip()[:200]


def bbc_examples(per_class: int = 4) -> list[tuple[str, str]]:
    seen: dict[str, int] = {}
    out = []
    for text, label in assets.bbc_news():
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            out.append((first_sentence(text), label))
    return out


def make_classifier(folder: Path) -> tuple[Path, list[tuple[str, str]]]:
    """A TextClassifier over the tiny encoder, fitted to 20 BBC sentences (5 real topics)."""
    data = bbc_examples()
    labels = sorted({lab for _, lab in data})
    clf = TextClassifier.new(_tiny_encoder(), tokenizer=load_tokenizer(assets.path("minilm")), labels=labels,
                             max_length=64)
    clf.fit([t for t, _ in data], [lab for _, lab in data], lr=3e-3, batch_size=10, max_steps=60,
            warmup_ratio=0.0, progress=False, patience=0)
    clf.save_pretrained(folder)
    return folder, data


def make_pair_classifier(folder: Path) -> Path:
    """A sentence-pair TextClassifier over the tiny encoder with RTE's labels, saved untrained."""
    clf = TextClassifier.new(_tiny_encoder(), tokenizer=load_tokenizer(assets.path("minilm")),
                             labels=["entailment", "not_entailment"], max_length=64, pair=True)
    clf.save_pretrained(folder)
    return folder


def wnut_examples(n: int = 12) -> list[tuple[list[str], list[str]]]:
    return [d for d in assets.wnut16()[:300] if any(t != "O" for t in d[1])][:n]


def make_tagger(folder: Path) -> tuple[Path, list[tuple[list[str], list[str]]]]:
    """A softmax Tagger over the tiny encoder, fitted to 12 WNUT-16 tweets with entities (BIO labels)."""
    data = wnut_examples()
    tags = sorted({t for _, ts in assets.wnut16() for t in ts} - {"O"})
    tg = Tagger.new(_tiny_encoder(), tokenizer=load_tokenizer(assets.path("minilm")), labels=["O"] + tags,
                    head="softmax", max_length=64)
    tg.fit([w for w, _ in data], [t for _, t in data], lr=3e-3, batch_size=6, max_steps=120,
           warmup_ratio=0.0, progress=False, patience=0)
    tg.save_pretrained(folder)
    return folder, data


def make_gpt2(folder: Path, positions: int = 128) -> Path:
    """A random 2-layer GPT-2 with a 400-token byte-level BPE learned on PTB text, as an HF folder."""
    from transferlm.tokenization.bpe import ByteLevelBPETokenizer

    text = folder.parent / "ptb_head.txt"
    text.write_text("\n".join(assets.ptb_text("train").splitlines()[:400]) + "\n", encoding="utf-8")
    tok = ByteLevelBPETokenizer.train([text], vocab_size=400, progress=False)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    Decoder(preset("gpt-mini", vocab_size=len(tok.vocab), num_layers=2, hidden_size=32, num_heads=2,
                   intermediate_size=64, max_position_embeddings=positions, eos_token_id=None)).save_pretrained(folder)
    return folder
