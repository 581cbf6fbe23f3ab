"""Word-level LSTM language models (Zaremba et al. 2014; AWD-LSTM, Merity et al. 2018) and the
LSTM encoder that ULMFiT (Howard & Ruder 2018) fine-tunes into a classifier.

- `WordVocab`: a word vocabulary (`<unk>` id 0, `<eos>` id 1, then by frequency) and two word
  tokenizers: "whitespace" (pre-tokenized text such as Mikolov's PTB) and "words" (lower-cased
  regex words and punctuation, digits -> "N" as in PTB: for raw text such as BBC News).
- `LSTMConfig` / `LSTMLanguageModel`: embedding -> stacked single-layer nn.LSTMs -> linear decoder
  tied to the embedding (Press & Wolf 2017; Inan et al. 2017). The AWD-LSTM regularisers are
  options, all off by default: embedding dropout (`dropoute`), variational / locked dropout on the
  embedding output, between layers and on the output (`dropouti`, `dropouth`, `dropout`),
  DropConnect on the hidden-to-hidden matrices (`wdrop`), and the AR / TAR penalties (`alpha`,
  `beta`), which `lm_loss` adds.
- `TBPTTBlocks` / `StreamLM`: truncated back-propagation through time for the shared Trainer.
  The corpus is cut into `batch_size` parallel streams; block i is columns [i*T, (i+1)*T); the
  hidden state is carried from block to block (detached) and reset at each epoch. Its state
  (`StreamLM.stream_state`) is saved in the Trainer's checkpoint (extra_state), so a resumed run
  equals an uninterrupted one.
- `perplexity`: exp of the mean next-word cross-entropy of a whole split, hidden state carried.
- A saved LSTM LM is a folder: config.json (the `LSTMConfig` with `"model_type": "lstm_lm"`),
  model.safetensors (tied weights stored once) and vocab.txt (one word a line, the id = the line).

Does not: character models (ELMo's char-CNN), sampled or adaptive softmax, NT-ASGD or variable
BPTT lengths (AWD-LSTM's), or cuDNN-specific fused kernels.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..fileio import atomic_write_text

MODEL_TYPE = "lstm_lm"
UNK, EOS = "<unk>", "<eos>"
_WORD_RE = re.compile(r"<unk>|<eos>|\d[\d,.]*\d|\d|[^\W\d_]+(?:['’][^\W\d_]+)?|[^\w\s]", re.UNICODE)


# --------------------------------------------------------------------------------------------- vocab

def tokenize(text: str, kind: str = "whitespace") -> list[str]:
    """Words of one line. "whitespace": split as is; "words": lower-case regex words, digits -> N."""
    if kind == "whitespace":
        return text.split()
    if kind == "words":
        return ["N" if t[0].isdigit() else t.lower() for t in _WORD_RE.findall(text)]
    raise ValueError(f"tokenizer must be whitespace or words, not {kind!r}")


class WordVocab:
    """id <-> word; `<unk>` is 0 and `<eos>` is 1 (an end-of-line token, as in Mikolov's PTB LM)."""

    def __init__(self, words: Sequence[str]):
        if list(words[:2]) != [UNK, EOS]:
            raise ValueError(f"a vocabulary starts with {UNK} and {EOS}, got {list(words[:2])}")
        self.itos = list(words)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("the vocabulary has a repeated word")

    @classmethod
    def build(cls, lines: Iterable[str], tokenizer: str = "whitespace", max_size: int | None = None,
              min_count: int = 1) -> "WordVocab":
        counts = Counter(w for line in lines for w in tokenize(line, tokenizer))
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[:max_size - 2]
        return cls([UNK, EOS, *words])

    def __len__(self) -> int:
        return len(self.itos)

    def encode_line(self, line: str, tokenizer: str, eos: bool = True) -> list[int]:
        ids = [self.stoi.get(w, 0) for w in tokenize(line, tokenizer)]
        return ids + [1] if eos else ids

    def encode_corpus(self, text: str, tokenizer: str) -> Tensor:
        """All non-empty lines, each followed by <eos>, as one (N,) int64 tensor."""
        ids: list[int] = []
        for line in text.splitlines():
            if line.strip():
                ids.extend(self.encode_line(line, tokenizer))
        if not ids:
            raise ValueError("the corpus has no words")
        return torch.tensor(ids, dtype=torch.long)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, "".join(w + "\n" for w in self.itos))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WordVocab":
        words = Path(path).read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
        for i, w in enumerate(words, 1):
            if not w or any(c.isspace() for c in w):
                raise ValueError(f"{path}:{i}: expected one word without spaces, got {w!r}")
        return cls(words)


# --------------------------------------------------------------------------------------------- model

@dataclass
class LSTMConfig:
    vocab_size: int = 10000
    emb_dim: int = 200
    hidden_size: int = 200
    num_layers: int = 2
    tie_weights: bool = True  # Press & Wolf 2017: the decoder reuses the embedding matrix
    init_range: float = 0.1  # Zaremba et al. 2014: uniform(-0.1, 0.1)
    dropout: float = 0.0  # locked dropout on the last layer's output (AWD-LSTM "dropout")
    dropouth: float = 0.0  # locked dropout between LSTM layers
    dropouti: float = 0.0  # locked dropout on the embedding output
    dropoute: float = 0.0  # embedding dropout: whole words dropped (Gal & Ghahramani 2016)
    wdrop: float = 0.0  # DropConnect on each layer's hidden-to-hidden matrix (Wan et al. 2013)
    alpha: float = 0.0  # AR: alpha * mean(dropped last output ^ 2) (Merity et al. 2017b)
    beta: float = 0.0  # TAR: beta * mean((h_t - h_{t-1}) ^ 2) on the undropped last output
    tokenizer: str = "whitespace"  # whitespace | words (see tokenize)
    model_type: str = MODEL_TYPE

    def __post_init__(self) -> None:
        for name in ("dropout", "dropouth", "dropouti", "dropoute", "wdrop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)}")
        if self.num_layers < 1 or self.vocab_size < 3:
            raise ValueError("need num_layers >= 1 and vocab_size >= 3")
        if self.tokenizer not in ("whitespace", "words"):
            raise ValueError(f"tokenizer must be whitespace or words, not {self.tokenizer!r}")

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(input, hidden) of each layer; the last layer outputs emb_dim when the weights are tied."""
        out = []
        for layer in range(self.num_layers):
            n_in = self.emb_dim if layer == 0 else self.hidden_size
            last = layer == self.num_layers - 1
            out.append((n_in, self.emb_dim if (last and self.tie_weights) else self.hidden_size))
        return out

    @property
    def output_size(self) -> int:
        return self.layer_sizes()[-1][1]


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Variational dropout (Gal & Ghahramani 2016): one mask per sequence, shared over time.
    x (B, T, C); the mask is (B, 1, C)."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(embed: nn.Embedding, ids: Tensor, p: float, training: bool) -> Tensor:
    """Embedding dropout (Merity et al. 2018 sec. 4.3): drop whole rows of the matrix, i.e. every
    occurrence of a word in the batch, scaling the kept rows by 1 / (1 - p)."""
    weight = embed.weight
    if training and p > 0.0:
        mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)  # (V, 1)
        weight = weight * mask
    return F.embedding(ids, weight)


class LSTMLanguageModel(nn.Module):
    """ids (B, T) -> logits (B, T, V), with the carried state and the per-layer outputs."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.emb_dim)
        # one nn.LSTM per layer: locked dropout between layers and per-layer sizes (AWD-LSTM)
        self.layers = nn.ModuleList(nn.LSTM(n_in, n_h, batch_first=True) for n_in, n_h in c.layer_sizes())
        self.decoder = nn.Linear(c.output_size, c.vocab_size)
        if c.tie_weights:
            if c.output_size != c.emb_dim:
                raise ValueError("tied weights need the last layer's size to equal emb_dim")
            self.decoder.weight = self.embed.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = self.config.init_range  # Zaremba et al. 2014 sec. 4: every parameter uniform(-0.1, 0.1)
        for p in self.parameters():
            nn.init.uniform_(p, -r, r)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int, device: torch.device | None = None) -> list[tuple[Tensor, Tensor]]:
        device = device or self.embed.weight.device
        return [(torch.zeros(1, batch_size, n_h, device=device), torch.zeros(1, batch_size, n_h, device=device))
                for _, n_h in self.config.layer_sizes()]

    def _run_layer(self, layer: nn.LSTM, x: Tensor, h: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        p = self.config.wdrop
        if not (self.training and p > 0.0):
            return layer(x, h)
        # DropConnect on W_hh (Merity et al. 2018 sec. 2): one mask per forward pass, shared over
        # time; functional_call swaps the dropped matrix in, so the gradient reaches the raw one.
        dropped = F.dropout(layer.weight_hh_l0, p=p, training=True)
        return torch.func.functional_call(layer, {"weight_hh_l0": dropped}, (x, h), strict=False)

    def encode(self, ids: Tensor, hidden: list[tuple[Tensor, Tensor]] | None = None
               ) -> tuple[list[Tensor], list[Tensor], list[tuple[Tensor, Tensor]]]:
        """(raw outputs, dropped outputs, new hidden): per layer, each (B, T, C_l)."""
        c = self.config
        if hidden is None:
            hidden = self.init_hidden(ids.shape[0], ids.device)
        x = embedding_dropout(self.embed, ids, c.dropoute, self.training)  # (B, T, E)
        x = locked_dropout(x, c.dropouti, self.training)
        raw, dropped, new_hidden = [], [], []
        for i, layer in enumerate(self.layers):
            out, h = self._run_layer(layer, x, hidden[i])  # (B, T, H_l)
            new_hidden.append(h)
            raw.append(out)
            last = i == len(self.layers) - 1
            x = locked_dropout(out, c.dropout if last else c.dropouth, self.training)
            dropped.append(x)
        return raw, dropped, new_hidden

    def forward(self, ids: Tensor, hidden: list[tuple[Tensor, Tensor]] | None = None) -> dict[str, Any]:
        raw, dropped, new_hidden = self.encode(ids, hidden)
        return {"logits": self.decoder(dropped[-1]), "hidden": new_hidden, "raw": raw, "dropped": dropped}

    # ----------------------------------------------------------------------------- save / load
    def save_pretrained(self, folder: str | os.PathLike, vocab: WordVocab) -> Path:
        from ..training.checkpointing import atomic_save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if len(vocab) != self.config.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocab)} words, the model {self.config.vocab_size}")
        atomic_save_model(self, folder / "model.safetensors")
        vocab.save(folder / "vocab.txt")
        atomic_write_text(folder / "config.json", json.dumps(asdict(self.config), indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> tuple["LSTMLanguageModel", WordVocab]:
        from safetensors.torch import load_model

        folder = Path(folder)
        config = read_config(folder)
        model = cls(config)
        load_model(model, str(folder / "model.safetensors"))
        vocab = WordVocab.load(folder / "vocab.txt")
        if len(vocab) != config.vocab_size:
            raise ValueError(f"{folder / 'vocab.txt'}: {len(vocab)} words, config.json says {config.vocab_size}")
        return model, vocab


def folder_model_type(folder: str | os.PathLike) -> str | None:
    """config.json's "model_type" in `folder`; None without a readable config.json holding a JSON object
    (a probe: the loaders report what is wrong with a folder)."""
    f = Path(folder) / "config.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, AttributeError):  # not UTF-8 / not JSON (both ValueErrors), or not an object
        return None


def is_lstm_folder(folder: str | os.PathLike) -> bool:
    return folder_model_type(folder) == MODEL_TYPE


def read_config(folder: str | os.PathLike) -> LSTMConfig:
    f = Path(folder) / "config.json"
    try:
        raw = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}:{e.lineno}: not valid JSON ({e.msg})") from None
    if raw.get("model_type") != MODEL_TYPE:
        raise ValueError(f"{f}: model_type is {raw.get('model_type')!r}, expected {MODEL_TYPE!r}")
    known = {fl.name for fl in fields(LSTMConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{f}: unknown keys {unknown}")
    return LSTMConfig(**raw)


def lm_loss(model: LSTMLanguageModel, out: dict[str, Any], labels: Tensor) -> dict[str, Tensor]:
    """Cross-entropy of the next word, plus AR and TAR when alpha / beta are set (training only)."""
    logits = out["logits"]
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))  # (B*T, V) vs (B*T,)
    loss = ce
    c = model.config
    if model.training and c.alpha > 0:  # AR (Merity et al. 2017b, eq. 1): L2 of the dropped output
        loss = loss + c.alpha * out["dropped"][-1].pow(2).mean()
    if model.training and c.beta > 0:  # TAR (eq. 2): slowness of the undropped output over time
        h = out["raw"][-1]
        loss = loss + c.beta * (h[:, 1:] - h[:, :-1]).pow(2).mean()
    return {"loss": loss, "ce": ce.detach()}


# --------------------------------------------------------------------------------------------- TBPTT

def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """(N,) -> (batch_size, N // batch_size): parallel streams, the remainder dropped."""
    n = ids.numel() // batch_size
    if n < 2:
        raise ValueError(f"{ids.numel()} tokens are too few for {batch_size} streams")
    return ids[:n * batch_size].view(batch_size, n)  # (B, n): stream b is a contiguous slice


class TBPTTBlocks:
    """Dataset of BPTT blocks: item i = {"input_ids": (B, T), "labels": (B, T)} (the next words)."""

    def __init__(self, ids: Tensor, batch_size: int, bptt: int):
        self.data = batchify(ids, batch_size)
        self.bptt = bptt
        self.n = (self.data.shape[1] - 1) // bptt  # whole blocks only: every step has the same T
        if self.n < 1:
            raise ValueError(f"the corpus is shorter than one BPTT block of {bptt} x {batch_size}")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        s = i * self.bptt
        return {"input_ids": self.data[:, s:s + self.bptt], "labels": self.data[:, s + 1:s + 1 + self.bptt]}


def first_item(items: list[Any]) -> Any:
    """The Trainer's collate_fn for TBPTTBlocks (batch_size 1: each item is a whole batch)."""
    return items[0]


class StreamLM(nn.Module):
    """The Trainer's model for TBPTT: carries the hidden state between steps (detached).

    Pass it as `on_epoch` (resets the state at a new epoch) and as `extra_state` (its stream state
    is checkpointed) and run the Trainer with shuffle off and batch_size 1.
    """

    def __init__(self, lm: LSTMLanguageModel):
        super().__init__()
        self.lm = lm
        self.hidden: list[tuple[Tensor, Tensor]] | None = None
        self.epoch = -1

    def on_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # a resumed run re-announces its epoch: keep the restored state
            self.epoch, self.hidden = epoch, None

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        out = self.lm(batch["input_ids"], self.hidden)
        self.hidden = [(h.detach(), c.detach()) for h, c in out["hidden"]]  # truncate the graph here
        return lm_loss(self.lm, out, batch["labels"])

    # extra_state protocol of the Trainer
    def state_dict_stream(self) -> dict[str, Any]:
        hidden = [] if self.hidden is None else [t for hc in self.hidden for t in hc]
        return {"epoch": self.epoch, "hidden": [t.cpu() for t in hidden]}

    def load_stream(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        flat = state["hidden"]
        dev = self.lm.embed.weight.device
        self.hidden = [(flat[i].to(dev), flat[i + 1].to(dev)) for i in range(0, len(flat), 2)] or None


class StreamState:
    """Adapter: the Trainer's `extra_state` (state_dict / load_state_dict) for a StreamLM."""

    def __init__(self, model: StreamLM):
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict_stream()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_stream(state)


@torch.no_grad()
def perplexity(lm: LSTMLanguageModel, ids: Tensor, batch_size: int = 10, bptt: int = 35) -> float:
    """exp(mean next-word cross-entropy) over `batch_size` streams of the split, state carried."""
    was = lm.training
    lm.eval()
    data = batchify(ids, batch_size).to(lm.embed.weight.device)  # (B, n)
    hidden, total, count = None, 0.0, 0
    for s in range(0, data.shape[1] - 1, bptt):
        x = data[:, s:s + bptt]
        y = data[:, s + 1:s + 1 + bptt]
        x = x[:, :y.shape[1]]
        out = lm(x, hidden)
        hidden = out["hidden"]
        logits = out["logits"]
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
        count += y.numel()
    lm.train(was)
    return math.exp(total / count)


class EpochDecay:
    """Zaremba et al. 2014's learning-rate multiplier, as a picklable LambdaLR function:
    lr_decay ** max(epoch + 1 - decay_start, 0), epoch = step // steps_per_epoch (0-based)."""

    def __init__(self, steps_per_epoch: int, decay_start: int = 4, factor: float = 0.5):
        self.steps_per_epoch, self.decay_start, self.factor = steps_per_epoch, decay_start, factor

    def __call__(self, step: int) -> float:
        epoch = step // self.steps_per_epoch
        return self.factor ** max(epoch + 1 - self.decay_start, 0)
