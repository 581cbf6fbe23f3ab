"""Static word vectors as the embedding layer of a model, and a bag-of-vectors text classifier.

The training algorithms and the evaluators have their own files (word2vec.py, glove.py,
evaluate.py); the vectors and their file formats are in vectors.py. This file is the public face:

    from transferlm.embeddings.static import Vectors, load_vectors, StaticEmbedding, tokenize
    glove = load_vectors("glove")                      # the asset, or any word2vec / GloVe file
    emb = StaticEmbedding.from_vectors(glove, mode="frozen")      # "frozen" | "finetune"
    emb = StaticEmbedding.scratch(words, dim=50, seed=0)          # trained from random init
    ids = emb.encode(tokenize("The bank raised rates."))          # list[int]
    x = emb(torch.tensor([ids]))                                  # (B, T, D)

The three ways of using static vectors in a model (e.g. Kim 2014's CNN-static / -non-static / -rand):
- "scratch":  every row random N(0, 1/D)-ish (seeded), all trained;
- "frozen":   the pretrained rows never change (a buffer, not a parameter, so no optimizer or weight
              decay can touch them); only <unk> and the task words missing from the vectors train;
- "finetune": initialised from the vectors, every row trained.

Ids: 0 is <pad> (a zero vector, never trained), 1 is <unk>, then the vocabulary.
Out-of-vocabulary handling, in this order (`encode`):
1. the word itself, if it is in the layer's vocabulary;
2. else its lower-cased form (GloVe 6B is lower-cased, so "Paris" -> "paris");
3. else <unk>: one shared row, random init (seeded), trained in every mode.
Words passed in `extra_words` (e.g. the training set's words) that the vectors lack get their own
rows, random init with the seed, with the scale (std) of the pretrained rows; trained in all modes.

What it does not: no subword / character back-off for unknown words (fastText), no sentence
encoders beyond mean / max pooling (the LSTM models are in models/lstm.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .vectors import FORMATS, Vectors, VectorsFileError, load, load_glove_asset, save

__all__ = [
    "FORMATS", "Vectors", "VectorsFileError", "load_vectors", "save_vectors", "load_glove_asset",
    "StaticEmbedding", "MODES", "PAD", "UNK", "tokenize", "BagOfVectorsClassifier", "BagConfig",
    "BagTrainConfig", "train_bag_classifier", "predict_bag",
]

load_vectors = load
save_vectors = save

MODES = ("scratch", "frozen", "finetune")
PAD, UNK = "<pad>", "<unk>"

# Words, numbers with inner '.'/',' (3.5, 1,000), inner apostrophes/hyphens kept; any other
# non-space character is a token of its own (close to the Stanford tokenizer GloVe 6B was built on).
_TOKEN = re.compile(r"\w+(?:[-'.,]\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Split text into words and punctuation marks (no lower-casing: `encode` falls back to it)."""
    return _TOKEN.findall(text)


class StaticEmbedding(nn.Module):
    """A word -> vector table: (B, T) ids -> (B, T, D). See the module docstring for the modes and
    the out-of-vocabulary rules. `words[i]` is the word of id i (words[0] = <pad>, words[1] = <unk>)."""

    def __init__(self, words: list[str], matrix: np.ndarray | Tensor, mode: str = "finetune",
                 trainable_rows: list[int] | None = None) -> None:
        """Low-level: `matrix` (V, D) holds a row per word in `words` (first two <pad>, <unk>).
        In "frozen" mode only `trainable_rows` (always including <unk>) are parameters."""
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if words[:2] != [PAD, UNK]:
            raise ValueError("words must start with <pad>, <unk>")
        self.mode = mode
        self.words = list(words)
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)
        m = torch.as_tensor(np.asarray(matrix), dtype=torch.float32).clone()
        m[0] = 0.0  # <pad>
        self.dim = int(m.shape[1])
        if mode == "frozen":
            train = sorted(set(trainable_rows or []) | {1})
            is_fixed = torch.ones(len(words), dtype=torch.bool)
            is_fixed[train] = False
            row = torch.zeros(len(words), dtype=torch.long)
            row[is_fixed] = torch.arange(int(is_fixed.sum()))
            row[~is_fixed] = torch.arange(len(train))
            self.register_buffer("fixed", m[is_fixed].contiguous())  # (V_fixed, D), never trained
            self.trainable = nn.Parameter(m[~is_fixed].contiguous())  # (V_train, D)
            self.register_buffer("is_fixed", is_fixed)
            self.register_buffer("row", row)
        else:
            self.weight = nn.Parameter(m)  # (V, D)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_vectors(cls, vectors: Vectors, mode: str = "frozen", extra_words: list[str] | None = None,
                     max_words: int | None = None, seed: int = 0,
                     only_words: list[str] | None = None) -> "StaticEmbedding":
        """A layer over `vectors` (its first `max_words` words), plus a row for each of
        `extra_words` that `vectors` lacks even lower-cased. mode: "frozen" or "finetune".

        `only_words` keeps just the rows those words reach (themselves or lower-cased): the same
        look-ups for them, a much smaller table (e.g. the words of a task's texts out of GloVe's
        400,000, which makes fine-tuning cheap)."""
        if mode == "scratch":
            raise ValueError("mode 'scratch' takes no vectors: use StaticEmbedding.scratch(words, dim)")
        v = vectors.head(max_words) if max_words is not None else vectors
        if only_words is not None:
            rows = sorted({i for w in only_words if (i := v.lookup(w)) is not None})
            v = Vectors([v.words[i] for i in rows], v.matrix[rows])
        words = [PAD, UNK] + list(v.words)
        known = set(words)
        new: list[str] = []
        for w in extra_words or []:
            if w not in known and w.lower() not in known:
                known.add(w)
                new.append(w)
        std = float(v.matrix.std()) if len(v) else 1.0 / math.sqrt(v.dim)
        rng = np.random.default_rng(seed)
        rand = rng.normal(0.0, std, size=(1 + len(new), v.dim)).astype(np.float32)
        matrix = np.concatenate([np.zeros((1, v.dim), np.float32), rand[:1], v.matrix, rand[1:]])
        first_new = 2 + len(v)
        trainable = [1] + list(range(first_new, first_new + len(new)))
        return cls(words + new, matrix, mode, trainable_rows=trainable)

    @classmethod
    def scratch(cls, words: list[str], dim: int, seed: int = 0) -> "StaticEmbedding":
        """A table over `words` (e.g. the training set's, most frequent first) from random
        N(0, 1/D) init (seeded), every row trained."""
        vocab = [PAD, UNK] + [w for w in dict.fromkeys(words) if w not in (PAD, UNK)]
        rng = np.random.default_rng(seed)
        matrix = rng.normal(0.0, 1.0 / math.sqrt(dim), size=(len(vocab), dim)).astype(np.float32)
        return cls(vocab, matrix, "scratch")

    # ------------------------------------------------------------ use

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self, word: str) -> int:
        """The id of `word`: itself, else lower-cased, else <unk> (1)."""
        i = self.index.get(word)
        if i is None:
            i = self.index.get(word.lower(), 1)
        return i

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.lookup(t) for t in tokens]

    def encode_batch(self, texts: list[list[str]], max_len: int | None = None) -> Tensor:
        """Token lists -> (B, T) ids, right-padded with 0, cut to `max_len`."""
        ids = [self.encode(t)[:max_len] if max_len else self.encode(t) for t in texts]
        T = max(1, max((len(x) for x in ids), default=1))
        out = torch.zeros(len(ids), T, dtype=torch.long)
        for b, x in enumerate(ids):
            out[b, : len(x)] = torch.tensor(x, dtype=torch.long)
        return out

    def forward(self, ids: Tensor) -> Tensor:
        """(B, T) ids -> (B, T, D); <pad> rows are zero."""
        if self.mode != "frozen":
            out = F.embedding(ids, self.weight, padding_idx=0)
            return out * (ids != 0).unsqueeze(-1).to(out.dtype)  # <pad> stays zero even if trained
        fixed = self.is_fixed[ids]  # (B, T)
        r = self.row[ids]
        a = F.embedding(torch.where(fixed, r, 0), self.fixed)  # (B, T, D)
        b = F.embedding(torch.where(fixed, 0, r), self.trainable)  # (B, T, D)
        out = torch.where(fixed.unsqueeze(-1), a, b)
        return out * (ids != 0).unsqueeze(-1).to(out.dtype)

    def matrix(self) -> Tensor:
        """The full (V, D) table as it is now (a copy)."""
        if self.mode != "frozen":
            return self.weight.detach().clone()
        return self.forward(torch.arange(len(self.words))).detach()

    def to_vectors(self) -> Vectors:
        """The table as `Vectors` without <pad> and <unk> (to save or evaluate)."""
        return Vectors(self.words[2:], self.matrix()[2:].numpy())


@dataclass
class BagConfig:
    pooling: str = "meanmax"  # "mean" | "max" | "meanmax" ([mean; max], 2D features)
    dropout: float = 0.1  # on the pooled features


class BagOfVectorsClassifier(nn.Module):
    """logits = W dropout(pool(E[w_1..w_T])) + b: the static-vector baseline for text classification
    (mean of word vectors: e.g. Iyyer et al. 2015's DAN without the hidden layers; [mean; max]
    pooling as in Shen et al. 2018's SWEM-concat)."""

    def __init__(self, embedding: StaticEmbedding, num_labels: int, config: BagConfig | None = None) -> None:
        super().__init__()
        self.config = config or BagConfig()
        if self.config.pooling not in ("mean", "max", "meanmax"):
            raise ValueError(f"pooling must be mean, max or meanmax, not {self.config.pooling!r}")
        self.embedding = embedding
        feats = embedding.dim * (2 if self.config.pooling == "meanmax" else 1)
        self.dropout = nn.Dropout(self.config.dropout)
        self.out = nn.Linear(feats, num_labels)

    def forward(self, ids: Tensor) -> Tensor:
        """(B, T) ids -> (B, num_labels) logits."""
        x = self.embedding(ids)  # (B, T, D)
        mask = (ids != 0).unsqueeze(-1)  # (B, T, 1)
        n = mask.sum(1).clamp(min=1)  # (B, 1)
        parts = []
        if self.config.pooling in ("mean", "meanmax"):
            parts.append(x.sum(1) / n)  # (B, D)
        if self.config.pooling in ("max", "meanmax"):
            parts.append(x.masked_fill(~mask, float("-inf")).max(1).values.clamp(min=-1e4))  # (B, D)
        return self.out(self.dropout(torch.cat(parts, -1)))


@dataclass
class BagTrainConfig:
    epochs: int = 100  # full passes; with tens of examples each pass is a few batches
    batch_size: int = 32
    lr: float = 5e-3  # AdamW (no weight decay: the frozen mode's rows are buffers anyway)
    max_len: int = 512  # tokens kept per text
    seed: int = 0


def train_bag_classifier(texts: list[str], labels: list[str], embedding: StaticEmbedding,
                         config: BagTrainConfig | None = None, bag: BagConfig | None = None
                         ) -> tuple[BagOfVectorsClassifier, list[str]]:
    """Fit a BagOfVectorsClassifier on (text, label) pairs (cross-entropy, AdamW, a fixed number of
    epochs, no dev set). Returns the model (in eval mode) and the label list (index = class id)."""
    cfg = config or BagTrainConfig()
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError(f"need at least 2 labels to train a classifier, got {names}")
    torch.manual_seed(cfg.seed)
    model = BagOfVectorsClassifier(embedding, len(names), bag)
    ids = embedding.encode_batch([tokenize(t) for t in texts], cfg.max_len)  # (N, T)
    y = torch.tensor([names.index(lab) for lab in labels])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in range(cfg.epochs):
        for b in torch.randperm(len(y), generator=gen).split(cfg.batch_size):
            loss = F.cross_entropy(model(ids[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), names


@torch.no_grad()
def predict_bag(model: BagOfVectorsClassifier, names: list[str], texts: list[str], max_len: int = 512) -> list[str]:
    ids = model.embedding.encode_batch([tokenize(t) for t in texts], max_len)
    return [names[i] for i in model(ids).argmax(-1).tolist()]
