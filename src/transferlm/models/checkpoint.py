"""Checkpoints in and out, for every registered model family: Hugging Face folders and GGUF files.

The generic machinery only; what a family's checkpoints look like is in its file under
`families/` (registry.py: architectures, config.json mapping, key map). A key map is a list of
`Rule`s: one of our tensors is made of one or more checkpoint tensors, concatenated along dim 0
(our fused Q/K/V projection), optionally transposed first (GPT-2's Conv1D layers store W^T).
`key_map(config, fmt, ...)` asks the config's family for its rules; `load_rules` fills a model
from them, checking every tensor's presence and shape and failing with the tensor's name (no
weight is left random); `export_rules` inverts them, so transformers' Auto classes load our
folders with no missing or unexpected keys. `load_model(path, cls)` / `save_model(model, folder)`
are the whole round trip for any family.

Weights are read with safetensors, or `torch.load(weights_only=True)` for pytorch_model.bin;
never unpickled. Files are written atomically (temp file, fsync, os.replace).

What this file does not do: know any family (families/ do), import any model class (the model
files import this one), tokenizers (tokenization/io/), optimizer or trainer state (training/),
quantised inference (GGUF tensors are dequantised to fp32 on load).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..fileio import atomic_write, atomic_write_text
from .config import ModelConfig
from .registry import Family, family, families, gguf_family

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"
CONFIG = "config.json"

# Buffers some old checkpoints carry that are not weights (recomputed by every implementation).
_IGNORABLE_SUFFIXES = (".position_ids", ".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: names the file and the tensor."""


@dataclass(frozen=True)
class Rule:
    """Our tensor `ours` = cat([T(t) for t in hf], dim 0), with T = transpose when `transpose`."""

    ours: str
    hf: tuple[str, ...]
    transpose: bool = False
    split: tuple[int, ...] | None = None  # rows of each hf piece (for saving a fused tensor back)


@dataclass(frozen=True)
class Layout:
    """Where a model sits in one checkpoint: the arguments of a family's key map.

    prefix: where the body's names start in the checkpoint ("bert.", "transformer.", "model.");
    head_prefix: where the LM head's names start; ours_prefix: where ours start (seq2seq parts);
    pooler / lm_head: whether the model has a BERT pooler / an LM head to map.
    """

    prefix: str = ""
    pooler: bool = False
    lm_head: bool = False
    head_prefix: str = ""
    ours_prefix: str = ""


class RuleList(list):
    """The list of Rules a family's key map builds, with the two helpers every key map uses."""

    def __init__(self, layout: Layout) -> None:
        super().__init__()
        self.layout = layout

    def add(self, ours: str, *hf: str, transpose: bool = False, split: tuple[int, ...] | None = None) -> None:
        self.append(Rule(self.layout.ours_prefix + ours, tuple(hf), transpose, split))

    def linear(self, ours: str, hf: str | tuple[str, ...], bias: bool, split: tuple[int, ...] | None = None,
               transpose: bool = False) -> None:
        """A Linear (or norm): `.weight` and, with bias, `.bias`, from one or several (fused) tensors."""
        names = (hf,) if isinstance(hf, str) else hf
        self.add(f"{ours}.weight", *(f"{n}.weight" for n in names), transpose=transpose, split=split)
        if bias:
            self.add(f"{ours}.bias", *(f"{n}.bias" for n in names), split=split)


def qkv_split(config: ModelConfig) -> tuple[int, int, int]:
    """Rows of Q, K and V in our fused qkv_proj (grouped-query attention: fewer K/V heads)."""
    return (config.num_heads * config.head_size, config.kv_heads * config.head_size,
            config.kv_heads * config.head_size)


# ---- the key map: each family's, asked through the registry --------------------------------------------
def key_map(config: Any, fmt: str, prefix: str = "", pooler: bool = False, lm_head: bool = False,
            head_prefix: str = "", ours_prefix: str = "") -> list[Rule]:
    """All rules for a model of `config` in checkpoint format `fmt` ("hf" or "gguf"); see `Layout`."""
    fam = family(config.model_type)
    check_family(config, fam)
    layout = Layout(prefix, pooler, lm_head, head_prefix, ours_prefix)
    if fmt == "hf":
        return fam.key_map(config, layout)
    if fmt == "gguf" and fam.gguf is not None:
        return fam.gguf.key_map(config, layout)
    raise CheckpointError(f"no key map for model_type {config.model_type!r} in format {fmt!r}")


def check_family(config: Any, fam: Family) -> None:
    """A config switched away from its family (`Family.fixed`) has no checkpoint layout."""
    for field, want in fam.fixed.items():
        if getattr(config, field) != want:
            raise CheckpointError(f"a {config.model_type} checkpoint has {field}={want!r}; this model has "
                                  f"{field}={getattr(config, field)!r}, which no {config.model_type} checkpoint holds")


# ---- reading ----------------------------------------------------------------------------------
def read_config(folder: str | Path) -> dict[str, Any]:
    f = Path(folder) / CONFIG
    if not f.is_file():
        raise FileNotFoundError(f"{folder}: no {CONFIG} (expected a Hugging Face model folder)")
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{f}: expected a JSON object, got {type(d).__name__}")
    return d


def read_tensors(folder: str | Path) -> tuple[dict[str, Tensor], str]:
    """All tensors of a HF folder and the file they came from (for error messages).

    Prefers model.safetensors (or its sharded index); falls back to pytorch_model.bin read with
    torch.load(weights_only=True), which refuses anything but tensors and plain containers.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / SAFETENSORS).is_file():
        return load_file(str(folder / SAFETENSORS)), str(folder / SAFETENSORS)
    if (folder / SAFETENSORS_INDEX).is_file():
        index = json.loads((folder / SAFETENSORS_INDEX).read_text(encoding="utf-8"))
        tensors: dict[str, Tensor] = {}
        for shard in sorted(set(index["weight_map"].values())):
            tensors.update(load_file(str(folder / shard)))
        return tensors, str(folder / SAFETENSORS_INDEX)
    if (folder / PYTORCH_BIN).is_file():
        sd = torch.load(folder / PYTORCH_BIN, map_location="cpu", weights_only=True)
        if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
            raise CheckpointError(f"{folder / PYTORCH_BIN}: expected a dict of tensors (a state dict)")
        return sd, str(folder / PYTORCH_BIN)
    raise FileNotFoundError(f"{folder}: no {SAFETENSORS}, {SAFETENSORS_INDEX} or {PYTORCH_BIN}")


def old_names(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """TF-era BERT checkpoints name LayerNorm parameters gamma/beta; rename to weight/bias."""
    out = {}
    for k, v in tensors.items():
        if k.endswith("LayerNorm.gamma"):
            k = k[: -len("gamma")] + "weight"
        elif k.endswith("LayerNorm.beta"):
            k = k[: -len("beta")] + "bias"
        out[k] = v
    return out


def load_rules(model: nn.Module, tensors: dict[str, Tensor], rules: list[Rule], source: str,
               dtype: torch.dtype = torch.float32, transform: Callable[[str, Tensor], Tensor] | None = None,
               expected_extra: tuple[str, ...] = ()) -> list[str]:
    """Fill every parameter of `model` from `tensors` following `rules`; return the unused names.

    Fails (CheckpointError naming `source` and the tensor) on a missing tensor, a shape mismatch,
    or a parameter of the model that no rule covers (it would stay random).
    """
    params = dict(model.named_parameters())
    covered: set[str] = set()
    used: set[str] = set()
    with torch.no_grad():
        for rule in rules:
            if rule.ours not in params:
                raise CheckpointError(f"internal key map error: model has no parameter {rule.ours!r}")
            pieces = []
            for name in rule.hf:
                if name not in tensors:
                    raise CheckpointError(f"{source}: missing tensor {name!r} (needed for {rule.ours})")
                t = tensors[name]
                if transform is not None:
                    t = transform(name, t)
                pieces.append(t.t() if rule.transpose else t)
                used.add(name)
            value = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)
            target = params[rule.ours]
            if value.shape != target.shape:
                shapes = ", ".join(f"{n} {tuple(tensors[n].shape)}" for n in rule.hf)
                raise CheckpointError(f"{source}: shape mismatch for tensor {shapes}: the model's {rule.ours} "
                                      f"needs {tuple(target.shape)}, the checkpoint gives {tuple(value.shape)}")
            target.data = value.to(dtype=dtype).contiguous().clone()
            covered.add(rule.ours)
    missing = sorted(set(params) - covered)
    if missing:
        raise CheckpointError(f"{source}: no checkpoint tensor for the model's {missing[:5]} "
                              f"({len(missing)} in all); refusing to leave them random")
    unused = sorted(k for k in set(tensors) - used
                    if not k.endswith(_IGNORABLE_SUFFIXES) and not k.startswith(expected_extra))
    if unused:
        warnings.warn(f"{source}: {len(unused)} tensors not used by the model, e.g. {unused[:4]}", stacklevel=3)
    return unused


def _find_prefix(tensors: dict[str, Tensor], probe: str, candidates: tuple[str, ...], source: str) -> str:
    for p in candidates:
        if p + probe in tensors:
            return p
    raise CheckpointError(f"{source}: missing tensor {probe!r} (looked for it under prefixes {list(candidates)})")


def _cast(model: nn.Module, dtype: torch.dtype) -> None:
    model.to(dtype)


def _class_for(fam: Family, raw: dict[str, Any]) -> type:
    """The model class a folder loads into when none is asked for: that of its config.json's
    first architecture, else the family's first."""
    names = raw.get("architectures") or []
    arch = fam.architecture(names[0]) if names else None
    return (arch or fam.architectures[0]).model


def load_model(path: str | Path, cls: type | None = None, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A model of class `cls` (default: the one config.json's architecture names) from a Hugging
    Face folder, or from a GGUF file (or a folder holding only one) of a family with a GGUF layout.

    The body prefix is found from the family's probe tensor under the prefixes of its
    architectures for `cls`; a pooler is loaded when its tensors are there.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return load_gguf(path, cls, dtype)
    if path.is_dir() and not (path / CONFIG).exists():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return load_gguf(ggufs[0], cls, dtype)
    raw = read_config(path)
    config = ModelConfig.from_hf_dict(raw, source=str(path / CONFIG))
    fam = family(config.model_type)
    cls = cls or _class_for(fam, raw)
    archs = fam.architectures_for(cls)
    if not archs:
        able = " / ".join(f.title for f in families() if f.architectures_for(cls))
        raise CheckpointError(f"{path}: {cls.__name__} loads {able or 'no'} checkpoints, this is model_type "
                              f"{config.model_type!r}")
    tensors, source = read_tensors(path)
    tensors = old_names(tensors)
    prefixes = tuple(dict.fromkeys([a.prefix for a in archs] + [""]))
    prefix = _find_prefix(tensors, fam.probe, prefixes, source)
    changes = dict(archs[0].config)
    pooler = any(a.pooler for a in archs) and fam.pooler_probe is not None and prefix + fam.pooler_probe in tensors
    if any(a.pooler for a in archs):
        changes["add_pooler"] = pooler
    config = config.replace(**changes) if changes else config
    model = cls(config)
    rules = key_map(config, "hf", prefix=prefix, pooler=pooler, lm_head=archs[0].lm_head)
    load_rules(model, tensors, rules, source, dtype, expected_extra=fam.head_tensors)
    _cast(model, dtype)
    return model.eval()


# ---- GGUF -------------------------------------------------------------------------------------
def gguf_unpermute(w: Tensor, n_heads: int) -> Tensor:
    """Undo llama.cpp's rotary permutation of Q/K rows (convert_hf_to_gguf.py LlamaModel.permute).

    The converter reorders each head's rows from the "half" layout (i, i + hs/2) to interleaved
    pairs (2i, 2i+1): w.reshape(H, 2, hs/2, C).swapaxes(1, 2). The inverse reshapes to
    (H, hs/2, 2, C) and swaps back; for K, H is the number of KV heads.
    """
    rows = w.shape[0]
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def gguf_field(reader: Any, key: str, default: Any = None) -> Any:
    """A GGUF metadata value (None / default when absent)."""
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def read_gguf_tensors(reader: Any) -> dict[str, Tensor]:
    """Every tensor of a GGUF file, dequantised to fp32, in PyTorch (row-major, out x in) shape."""
    import numpy as np
    from gguf.quants import dequantize

    out = {}
    for t in reader.tensors:
        shape = tuple(int(s) for s in reversed(t.shape))  # GGUF lists dims innermost first
        arr = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape)
        out[t.name] = torch.from_numpy(arr if arr.flags.writeable else arr.copy())  # F32 data is a read-only mmap
    return out


def load_gguf(path: str | Path, cls: type | None = None, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A model from a GGUF file (any quantisation gguf.quants can dequantise) of a family with a GGUF layout."""
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GGUF file")
    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable GGUF file ({e})") from None
    arch = gguf_field(reader, "general.architecture")
    fam = gguf_family(arch)
    if fam is None or fam.gguf is None:
        known = [f.gguf.arch for f in families() if f.gguf is not None]
        raise CheckpointError(f"{path}: unsupported GGUF architecture {arch!r} (only {' / '.join(map(repr, known))} "
                              f"family)")
    config = fam.gguf.config(reader, str(path))
    tensors = read_gguf_tensors(reader)
    lm = next((a for a in fam.architectures if a.lm_head), fam.architectures[0])
    cls = cls or lm.model
    model = cls(config)
    transform = fam.gguf.transform(config) if fam.gguf.transform is not None else None
    load_rules(model, tensors, key_map(config, "gguf", lm_head=lm.lm_head), str(path), dtype, transform=transform)
    _cast(model, dtype)
    return model.eval()


# ---- writing ----------------------------------------------------------------------------------
def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def export_rules(model: nn.Module, rules: list[Rule]) -> dict[str, Tensor]:
    """The checkpoint tensors for `model` under `rules` (the inverse of load_rules)."""
    params = dict(model.named_parameters())
    out: dict[str, Tensor] = {}
    for rule in rules:
        value = params[rule.ours].detach()
        pieces = value.split(list(rule.split), dim=0) if rule.split and len(rule.hf) > 1 else (value,)
        if len(pieces) != len(rule.hf):
            raise CheckpointError(f"internal key map error: {rule.ours} does not split into {rule.hf}")
        for name, piece in zip(rule.hf, pieces):
            out[name] = (piece.t() if rule.transpose else piece).contiguous().clone()
    return out


def write_folder(folder: str | Path, config_dict: dict[str, Any], tensors: dict[str, Tensor]) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / SAFETENSORS, lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    write_json(folder / CONFIG, config_dict)
    return folder


def save_model(model: nn.Module, folder: str | Path, extra_tensors: dict[str, Tensor] | None = None,
               architectures: list[str] | None = None) -> Path:
    """Write `model` (of any registered family) as a Hugging Face folder.

    architectures: the HF class written to config.json (default: the family's first for this
    model's class); it decides the layout. extra_tensors: head weights under their HF names, for
    an architecture that holds heads (e.g. BertForMaskedLM's `cls.*`).
    """
    config = model.config
    fam = family(config.model_type)
    mine = fam.architectures_for(type(model))
    if not mine:
        raise CheckpointError(f"cannot save a {type(model).__name__} as a {fam.title} checkpoint "
                              f"(model_type {config.model_type!r})")
    name = architectures[0] if architectures else mine[0].name
    arch = next((a for a in mine if a.name == name), None)
    if arch is None:
        raise CheckpointError(f"unknown architecture {name!r} for a {config.model_type} {type(model).__name__} "
                              f"(expected one of {[a.name for a in mine]})")
    extra = {k: v.detach().contiguous().clone() for k, v in (extra_tensors or {}).items()}
    if extra and not arch.heads:
        with_heads = [a.name for a in mine if a.heads]
        raise CheckpointError(f"extra_tensors are head weights: name the architecture that holds them "
                              f"(architectures=[...], one of {with_heads})")
    if arch.pooler and getattr(model, "pooler", None) is None:
        raise CheckpointError(f"{arch.name} needs pooler weights, but this {type(model).__name__} has no pooler")
    tensors = export_rules(model, key_map(config, "hf", prefix=arch.prefix, pooler=arch.pooler, lm_head=arch.lm_head))
    clash = set(extra) & set(tensors)
    if clash:
        raise CheckpointError(f"extra_tensors repeat model tensors: {sorted(clash)[:4]}")
    tensors.update(extra)
    return write_folder(folder, config.to_hf_dict([arch.name]), tensors)


# ---- encoder-decoder (transformers' EncoderDecoderModel): two families' layouts under encoder. / decoder.
def _seq2seq_rules(enc: ModelConfig, dec: ModelConfig, pooler: bool) -> list[Rule]:
    """The encoder under `encoder.` as its family's first architecture (BertModel), the decoder
    under `decoder.` as its family's LM architecture (BertLMHeadModel: body under `decoder.bert.`)."""
    body = family(enc.model_type).architectures[0]
    lm = next(a for a in family(dec.model_type).architectures if a.lm_head)
    return (key_map(enc, "hf", prefix="encoder." + body.prefix, pooler=pooler, ours_prefix="encoder.")
            + key_map(dec, "hf", prefix="decoder." + lm.prefix, lm_head=True, head_prefix="decoder.",
                      ours_prefix="decoder."))
