"""Contextual embeddings: token, word and sentence vectors read out of a pretrained encoder.

What this file does:
- picks hidden layers (`last`, `last4`, `all`, or any indices) and mixes them (mean or concat);
- pools subword vectors into word vectors (first subword or mean) through `Encoding.word_ids`;
- pools token vectors into one sentence vector ([CLS] or attention-masked mean), with the
  sentence-transformers convention (mean, then L2-normalise) as an option;
- runs the encoder over many texts fast: texts are sorted by token length, batched, each batch is
  padded only to its own longest, and results are put back in input order.

What it does not: train or fine-tune, cache vectors, or give static (type-level) vectors: those are
in `static.py`. Inputs longer than `max_length` are truncated (the tail of the text is dropped, the
closing special token kept), never windowed.

It needs only the contracts of docs/ARCHITECTURE.md: a tokenizer with `encode_batch(texts)` that
returns encodings carrying `ids`, `tokens`, `offsets`, `word_ids`, `type_ids`,
`special_tokens_mask` and `attention_mask`, and a model whose `forward(input_ids, attention_mask,
token_type_ids, output_hidden_states)` returns `last_hidden_state` (B,T,C) and `hidden_states`
(L+1 tensors, the embedding output first). Hugging Face `BertModel` and a `tokenizers.Tokenizer`
meet the same contract, which is how the parity tests compare the two.

Notation: B batch, T time (tokens), C channels, L layers, W words.
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

Pooling = Literal["mean", "cls"]
WordPooling = Literal["first", "mean"]
Combine = Literal["mean", "concat"]

# Named layer sets. Indices count hidden_states: 0 is the embedding output, -1 the last layer.
LAYER_PRESETS: dict[str, tuple[int, ...] | None] = {
    "last": (-1,),
    # BERT (Devlin et al. 2019) sec. 5.3, feature-based NER: the last four hidden layers,
    # summed (95.9 dev F1) or concatenated (96.1), nearly match fine-tuning (96.4).
    "last4": (-4, -3, -2, -1),
    "all": None,  # every transformer layer 1..L (the embedding output 0 is left out)
    "embeddings": (0,),  # the input embedding layer's output (token + position + segment, normed)
}


@dataclass
class TokenVectors:
    """One text's per-token vectors, special tokens included, as the model saw them."""

    tokens: list[str]
    offsets: list[tuple[int, int]]  # character spans into the text; (0, 0) for special tokens
    special: list[bool]  # True where the template added the token ([CLS], [SEP])
    vectors: np.ndarray  # (T, C) float32, or (T, k*C) with combine="concat"


@dataclass
class WordVectors:
    """One text's word vectors, one row per word of the tokenizer's pre-tokenizer."""

    words: list[str]  # the word's characters in the text (after truncation, only kept words)
    spans: list[tuple[int, int]]  # character span of each word in the text
    vectors: np.ndarray  # (W, C) float32


# ----------------------------------------------------------------------------------------------
# Layer selection and the pooling maths (the one place it lives)
# ----------------------------------------------------------------------------------------------


def parse_layers(spec: str | int | Sequence[int]) -> tuple[int, ...] | None:
    """`"last4"`, `"-4,-3,-2,-1"`, `"0"`, `-1` or `[-2, -1]` -> a tuple of indices (None: all layers)."""
    if isinstance(spec, int):
        return (spec,)
    if isinstance(spec, str):
        s = spec.strip()
        if s in LAYER_PRESETS:
            return LAYER_PRESETS[s]
        try:
            out = tuple(int(x) for x in s.split(",") if x.strip())
        except ValueError:
            raise ValueError(
                f"layers {spec!r}: expected one of {', '.join(LAYER_PRESETS)} or comma-separated "
                f"integers such as '-4,-3,-2,-1'"
            ) from None
        if not out:
            raise ValueError(f"layers {spec!r}: no layer given")
        return out
    out = tuple(int(i) for i in spec)
    if not out:
        raise ValueError("layers: an empty list selects nothing")
    return out


def resolve_layers(spec: str | int | Sequence[int], num_hidden_states: int) -> tuple[int, ...]:
    """Indices into hidden_states (length L+1), made non-negative and checked against the model."""
    picked = parse_layers(spec)
    if picked is None:
        return tuple(range(1, num_hidden_states))
    out = []
    for i in picked:
        j = i + num_hidden_states if i < 0 else i
        if not 0 <= j < num_hidden_states:
            raise ValueError(
                f"layer {i} does not exist: this model has {num_hidden_states - 1} layers, so "
                f"hidden_states indices run from {-num_hidden_states} to {num_hidden_states - 1}"
            )
        out.append(j)
    return tuple(out)


def mix_layers(hidden_states: Sequence[torch.Tensor], layers: Sequence[int], combine: Combine = "mean") -> torch.Tensor:
    """Mean (B,T,C) or concatenation (B,T,k*C) of the chosen hidden states."""
    picked = [hidden_states[i] for i in layers]
    if len(picked) == 1:
        return picked[0]
    if combine == "mean":
        return torch.stack(picked, dim=0).mean(dim=0)  # (k, B, T, C) -> (B, T, C)
    if combine == "concat":
        return torch.cat(picked, dim=-1)  # (B, T, k*C)
    raise ValueError(f"combine must be 'mean' or 'concat', not {combine!r}")


def mean_pool(x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Average of the real tokens' vectors: (B,T,C), (B,T) -> (B,C).

    Sentence-BERT (Reimers & Gurevych 2019) sec. 3: MEAN pooling of the output vectors, the
    strategy all-MiniLM-L6-v2 was trained with; padding positions get weight 0.
    """
    if attention_mask is None:
        return x.mean(dim=1)
    m = attention_mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def cls_pool(x: torch.Tensor) -> torch.Tensor:
    """The first token's vector, [CLS] in BERT (Devlin et al. 2019 sec. 3): (B,T,C) -> (B,C)."""
    return x[:, 0]


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Unit rows, so that a dot product is the cosine (sentence-transformers' Normalize module)."""
    return torch.nn.functional.normalize(x, p=2.0, dim=-1)


def pool_words(x: torch.Tensor, word_ids: Sequence[int | None], method: WordPooling = "first") -> tuple[list[int], torch.Tensor]:
    """Subword vectors (T,C) -> (word ids in order of first appearance, (W,C) word vectors).

    `first` takes each word's first subword, as BERT does for NER (Devlin et al. 2019 sec. 5.3);
    `mean` averages all of the word's subwords. Tokens with word id None (specials) are skipped.
    """
    if len(word_ids) != x.shape[0]:
        raise ValueError(f"word_ids has {len(word_ids)} entries for {x.shape[0]} token vectors")
    first_pos: dict[int, int] = {}
    for t, w in enumerate(word_ids):
        if w is not None and w not in first_pos:
            first_pos[w] = t
    words = list(first_pos)
    if not words:
        return [], x.new_zeros((0, x.shape[-1]))
    if method == "first":
        return words, x[torch.tensor([first_pos[w] for w in words], device=x.device)]
    if method == "mean":
        row = {w: r for r, w in enumerate(words)}
        tok = [t for t, w in enumerate(word_ids) if w is not None]
        dest = torch.tensor([row[word_ids[t]] for t in tok], device=x.device)
        sums = x.new_zeros((len(words), x.shape[-1])).index_add_(0, dest, x[torch.tensor(tok, device=x.device)])
        counts = torch.bincount(dest, minlength=len(words)).to(x.dtype).unsqueeze(-1)  # (W, 1)
        return words, sums / counts
    raise ValueError(f"word pooling must be 'first' or 'mean', not {method!r}")


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding is minimal.

    Texts are sorted by length (a stable sort: equal lengths keep input order) and cut into
    consecutive batches of `batch_size`. When the count does not divide evenly, one batch is
    short, and where it sits matters (a batch pays its longest length once per row): every
    position is costed and the cheapest kept, so no batching into these sizes, input order
    included, computes fewer padded positions. The longest texts run first, so a text that does
    not fit in memory fails at once rather than at the end of a long run.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n, bs = len(order), batch_size
    k, r = divmod(n, bs)  # k full batches and one of r texts (if r > 0)
    if r == 0:
        return [order[i : i + bs] for i in range(0, n, bs)]
    L = [lengths[i] for i in order]  # descending
    # With the short batch in slot p, full batches start at j*bs (j < p) and at r + j*bs (j >= p).
    before = [0]
    for j in range(k):
        before.append(before[-1] + L[j * bs])
    after = [0]
    for j in reversed(range(k)):
        after.append(after[-1] + L[r + j * bs])
    after.reverse()  # after[p] = sum of L[r + j*bs] for j in p..k-1
    cost = [bs * before[p] + r * L[p * bs] + bs * after[p] for p in range(k + 1)]
    p = min(range(k + 1), key=cost.__getitem__)
    starts = [j * bs for j in range(p)] + [p * bs] + [r + j * bs for j in range(p, k)]
    sizes = [bs] * p + [r] + [bs] * (k - p)
    return [order[s : s + m] for s, m in zip(starts, sizes)]


# ----------------------------------------------------------------------------------------------
# Tokenizing and running the model in length buckets
# ----------------------------------------------------------------------------------------------


@dataclass
class Tokenized:
    """The fields used here from one text's Encoding: padding removed, truncated to max_length."""

    ids: list[int]
    type_ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    special: list[bool]


def _trim(e: Any, max_length: int) -> Tokenized:
    keep = [i for i, m in enumerate(e.attention_mask) if m]  # drop any padding the tokenizer added
    n = len(keep)
    if n > max_length:
        # Cut the tail of the text but keep the closing special token ([SEP]), which is what a
        # tokenizer's own longest-first truncation does to a single sequence.
        last_special = bool(e.special_tokens_mask[keep[-1]])
        keep = keep[: max_length - 1] + [keep[-1]] if last_special else keep[:max_length]
    ids, tt, toks, offs, wids, spec = e.ids, e.type_ids, e.tokens, e.offsets, e.word_ids, e.special_tokens_mask
    return Tokenized(
        ids=[ids[i] for i in keep],
        type_ids=[tt[i] for i in keep],
        tokens=[toks[i] for i in keep],
        offsets=[tuple(offs[i]) for i in keep],
        word_ids=[wids[i] for i in keep],
        special=[bool(spec[i]) for i in keep],
    )


def encode(texts: Sequence[str], tokenizer: Any, max_length: int) -> list[Tokenized]:
    """Tokenize every text once (with special tokens, unpadded), truncated to max_length tokens."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2 (room for [CLS] and [SEP]), not {max_length}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    return [_trim(e, max_length) for e in _encode_unpadded(tokenizer, list(texts), max_length)]


def _encode_unpadded(tokenizer: Any, texts: list[str], max_length: int) -> list[Any]:
    """`encode_batch` without padding, truncating in the tokenizer when it takes `max_length`.

    Our `Tokenizer.encode_batch` pads only when asked; padding=None is passed anyway so
    that each length bucket pads on its own. A `tokenizers.Tokenizer` takes no such keywords
    (configure it with `no_padding()`); `_trim` removes whatever padding still comes back.
    """
    try:
        params = inspect.signature(tokenizer.encode_batch).parameters
    except (TypeError, ValueError):  # a compiled method without a signature
        params = {}
    kwargs: dict[str, Any] = {}
    if "padding" in params:
        kwargs["padding"] = None
    if "max_length" in params:
        kwargs["max_length"] = max_length
    return tokenizer.encode_batch(texts, **kwargs)


def _model_max_length(model: Any) -> int:
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "max_seq_len", "block_size", "n_positions"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return 512  # BERT's position table; only reached for a model that does not say


def _device(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def _num_hidden_states(model: Any) -> int:
    cfg = getattr(model, "config", None)
    for name in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v + 1
    raise ValueError("cannot tell how many layers the model has (its config names no layer count)")


def run_batches(
    encs: Sequence[Tokenized],
    model: Any,
    layers: Sequence[int],
    combine: Combine,
    batch_size: int,
    pad_id: int = 0,
    progress: bool = False,
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor | None]]:
    """Yield (input indices, mixed token vectors (B,T,C), attention mask (B,T) or None) per batch.

    Batches come in length order (longest first); each is padded only to its own longest text, and
    when all its texts have one length no mask is passed at all, so attention runs unmasked.
    `layers` are non-negative indices into hidden_states (see `resolve_layers`).
    """
    dev = _device(model)
    n_states = _num_hidden_states(model)
    only_last = list(layers) == [n_states - 1]
    bar = tqdm(total=len(encs), unit="text", desc="embed", disable=not progress, file=sys.stderr)
    for idx in length_batches([len(encs[i].ids) for i in range(len(encs))], batch_size):
        lens = [len(encs[i].ids) for i in idx]
        T = max(lens)
        ids = torch.full((len(idx), T), pad_id, dtype=torch.long)  # (B, T)
        tt = torch.zeros((len(idx), T), dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(idx), T), dtype=torch.long)  # (B, T)
        for r, i in enumerate(idx):
            n = lens[r]
            ids[r, :n] = torch.tensor(encs[i].ids)
            tt[r, :n] = torch.tensor(encs[i].type_ids)
            mask[r, :n] = 1
        uniform = min(lens) == T
        am = None if uniform else mask.to(dev)
        out = model(
            input_ids=ids.to(dev),
            attention_mask=am,
            token_type_ids=tt.to(dev),
            output_hidden_states=not only_last,
        )
        if only_last:
            x = out.last_hidden_state
        else:
            hs = out.hidden_states
            if hs is None or len(hs) != n_states:
                raise ValueError(f"model returned {0 if hs is None else len(hs)} hidden states, expected {n_states}")
            x = mix_layers(hs, layers, combine)
        bar.update(len(idx))
        yield idx, x, am
    bar.close()


# ----------------------------------------------------------------------------------------------
# The public functions
# ----------------------------------------------------------------------------------------------


def resolve_model_path(name: str | Path) -> Path:
    """An asset name ("minilm") or a folder holding config.json + weights -> the folder."""
    from ..data import assets

    if isinstance(name, str) and name in assets.ASSETS:
        return assets.path(name)
    p = Path(name).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"model {str(name)!r}: no such folder, and not an asset name (known: {', '.join(assets.ASSETS)})"
        )
    if p.is_dir() and not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p}: expected a Hugging Face model folder with config.json")
    return p


def load(name: str | Path) -> tuple[Any, Any]:
    """(Encoder in eval mode, tokenizer) from an asset name or a Hugging Face folder."""
    from ..models.encoder import Encoder
    from ..tokenization.io import load_tokenizer

    folder = resolve_model_path(name)
    model = Encoder.from_pretrained(folder).eval()
    return model, load_tokenizer(folder)


def sentence_transformers_defaults(folder: str | Path) -> dict[str, Any]:
    """The pooling, normalisation and length a sentence-transformers folder declares, as `embed` kwargs.

    Reads 1_Pooling/config.json (cls or mean), modules.json (a Normalize module) and
    sentence_bert_config.json (max_seq_length). A folder without them gives {} (plain BERT).
    """
    import json

    folder = Path(folder)
    out: dict[str, Any] = {}
    pool = folder / "1_Pooling" / "config.json"
    if pool.is_file():
        cfg = json.loads(pool.read_text(encoding="utf-8"))
        if cfg.get("pooling_mode_cls_token"):
            out["pooling"] = "cls"
        elif cfg.get("pooling_mode_mean_tokens"):
            out["pooling"] = "mean"
        else:
            raise ValueError(f"{pool}: only cls or mean-tokens pooling is supported, got {cfg}")
    modules = folder / "modules.json"
    if modules.is_file():
        mods = json.loads(modules.read_text(encoding="utf-8"))
        out["normalize"] = any(str(m.get("type", "")).endswith(".Normalize") for m in mods)
    sb = folder / "sentence_bert_config.json"
    if sb.is_file():
        n = json.loads(sb.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(n, int):
            out["max_length"] = n
    return out


def _prepare(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    if isinstance(model, (str, Path)):
        m, t = load(model)
        return m, (tokenizer if tokenizer is not None else t)
    if tokenizer is None:
        raise ValueError("pass the tokenizer that goes with the model (or pass the model as a name or folder)")
    return model, tokenizer


def _pad_id(tokenizer: Any) -> int:
    role = getattr(tokenizer, "special_token_id", None)
    if callable(role):
        try:
            return int(role("pad"))
        except KeyError:
            pass
    for name in ("pad_token_id", "pad_id"):
        v = getattr(tokenizer, name, None)
        if isinstance(v, int):
            return v
    tid = getattr(tokenizer, "token_to_id", None)
    if callable(tid):
        v = tid("[PAD]")
        if isinstance(v, int):
            return v
    return 0  # padded positions are masked out, so the id only has to be a valid row


def embed(
    texts: Sequence[str],
    model: Any = "minilm",
    tokenizer: Any = None,
    pooling: Pooling = "mean",  # Sentence-BERT's best pooling, and what all-MiniLM-L6-v2 was trained with
    layers: str | int | Sequence[int] = "last",  # sentence encoders are trained on the last layer
    batch_size: int = 32,  # the common default; small enough for any machine with MiniLM
    normalize: bool = False,  # raw pooled vectors, as BertModel + pooling gives; True for cosine search
    combine: Combine = "mean",  # mean keeps the width C, so vectors of any layer set compare
    max_length: int | None = None,  # None: the model's max_position_embeddings (512 for BERT)
    progress: bool = False,  # a tqdm bar on stderr, for long inputs
) -> np.ndarray:
    """One sentence vector per text, in input order: (N, C) float32.

    `model` is an encoder (with its `tokenizer`), or an asset name / folder to load both from.
    `pooling`: "mean" over real tokens (Sentence-BERT) or "cls". `normalize=True` gives unit rows:
    with pooling="mean", layers="last" that is the sentence-transformers all-MiniLM-L6-v2 recipe.
    """
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
    model, tokenizer = _prepare(model, tokenizer)
    max_length = max_length or _model_max_length(model)
    encs = encode(texts, tokenizer, max_length)
    picked = resolve_layers(layers, _num_hidden_states(model))
    out: np.ndarray | None = None
    with torch.inference_mode():
        for idx, x, am in run_batches(encs, model, picked, combine, batch_size, _pad_id(tokenizer), progress):
            v = mean_pool(x, am) if pooling == "mean" else cls_pool(x)  # (B, C)
            if normalize:
                v = l2_normalize(v)
            if out is None:
                out = np.empty((len(encs), v.shape[-1]), dtype=np.float32)
            out[idx] = v.float().cpu().numpy()
    if out is None:  # no texts: an empty matrix of the right width
        width = getattr(getattr(model, "config", None), "hidden_size", 0)
        return np.empty((0, width * (len(picked) if combine == "concat" else 1)), dtype=np.float32)
    return out


def embed_tokens(
    texts: Sequence[str],
    model: Any = "minilm",
    tokenizer: Any = None,
    layers: str | int | Sequence[int] = "last",
    batch_size: int = 32,
    combine: Combine = "mean",
    max_length: int | None = None,
    progress: bool = False,
) -> list[TokenVectors]:
    """Per-token vectors of every text (specials included), in input order."""
    model, tokenizer = _prepare(model, tokenizer)
    max_length = max_length or _model_max_length(model)
    encs = encode(texts, tokenizer, max_length)
    picked = resolve_layers(layers, _num_hidden_states(model))
    out: list[TokenVectors | None] = [None] * len(encs)
    with torch.inference_mode():
        for idx, x, _ in run_batches(encs, model, picked, combine, batch_size, _pad_id(tokenizer), progress):
            xs = x.float().cpu().numpy()
            for r, i in enumerate(idx):
                e = encs[i]
                out[i] = TokenVectors(e.tokens, e.offsets, e.special, xs[r, : len(e.ids)].copy())
    return out  # type: ignore[return-value]


def embed_words(
    texts: Sequence[str],
    model: Any = "minilm",
    tokenizer: Any = None,
    word_pooling: WordPooling = "first",
    layers: str | int | Sequence[int] = "last",
    batch_size: int = 32,
    combine: Combine = "mean",
    max_length: int | None = None,
    progress: bool = False,
) -> list[WordVectors]:
    """Word vectors of every text, pooled from subwords by `word_ids`, in input order.

    Words are those of the tokenizer's pre-tokenizer (BERT splits on spaces and punctuation).
    """
    if word_pooling not in ("first", "mean"):
        raise ValueError(f"word_pooling must be 'first' or 'mean', not {word_pooling!r}")
    model, tokenizer = _prepare(model, tokenizer)
    max_length = max_length or _model_max_length(model)
    encs = encode(texts, tokenizer, max_length)
    picked = resolve_layers(layers, _num_hidden_states(model))
    out: list[WordVectors | None] = [None] * len(encs)
    with torch.inference_mode():
        for idx, x, _ in run_batches(encs, model, picked, combine, batch_size, _pad_id(tokenizer), progress):
            for r, i in enumerate(idx):
                e = encs[i]
                words, v = pool_words(x[r, : len(e.ids)], e.word_ids, word_pooling)
                first: dict[int, int] = {}
                end: dict[int, int] = {}
                for (s, t), wid in zip(e.offsets, e.word_ids):
                    if wid is not None:
                        first.setdefault(wid, s)
                        end[wid] = t
                spans = [(first[w], end[w]) for w in words]
                out[i] = WordVectors([texts[i][s:t] for s, t in spans], spans, v.float().cpu().numpy())
    return out  # type: ignore[return-value]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def padding_overhead(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Positions computed / real tokens for a batching (1.0 = no padding at all)."""
    real = sum(lengths)
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches if b)
    return computed / real if real else math.nan
