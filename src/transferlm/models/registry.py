"""The model families: one `Family` per Hugging Face `model_type`, registered once, looked up by all.

A family is everything that ties one published architecture to its Hugging Face files:

    Family(model_type="bert", title="BERT",
           architectures=(Architecture("BertModel", Encoder, pooler=True), ...),   # HF class -> ours
           from_hf=..., to_hf=...,          # config.json <-> ModelConfig
           key_map=...,                     # our parameter names <-> the checkpoint's tensors
           probe="embeddings.word_embeddings.weight", fixed={...}, causal=False)

Each family lives in its own file under `families/` and ends with `register(FAMILY)`;
`families/__init__.py` imports those files (one line per family), and `models/__init__.py`
imports `families`, so importing anything from `transferlm.models` registers them all.

Who asks the registry: config.py (`from_hf_dict`, `to_hf_dict`, `causal`), checkpoint.py (the
generic load / save of HF folders and GGUF files) and the model classes' `from_pretrained`.

What this file does not do: hold any family's knowledge itself (families/ do), read files
(checkpoint.py does), or import any model file (so every module may import it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Architecture:
    """One Hugging Face class name of a family and how our model sits in its checkpoints.

    model: our class that loads / saves it (Encoder, Decoder, or a family's own class);
    prefix: where the body's tensors start ("", "bert.", "transformer.", "model.");
    pooler / lm_head: whether the checkpoint holds the BERT pooler / an LM head that our model maps;
    heads: whether it holds task-head tensors beyond ours (passed to `save_pretrained` as
    `extra_tensors`), e.g. BertForMaskedLM's `cls.*`;
    config: ModelConfig fields this architecture implies when loaded (e.g. is_decoder=True).
    """

    name: str
    model: type
    prefix: str = ""
    pooler: bool = False
    lm_head: bool = False
    heads: bool = False
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class GGUFFormat:
    """A family's llama.cpp GGUF layout: `general.architecture`, config from the metadata, key map,
    and an optional per-tensor transform built from the config (e.g. undo a Q/K permutation)."""

    arch: str
    config: Callable[[Any, str], Any]  # (GGUFReader, source) -> config
    key_map: Callable[[Any, Any], list]  # (config, Layout) -> [Rule]
    transform: Callable[[Any], Callable[[str, Any], Any]] | None = None  # config -> (name, tensor) -> tensor


@dataclass(frozen=True)
class Family:
    model_type: str  # config.json's "model_type"
    title: str  # for messages: "BERT", "GPT-2"
    architectures: tuple[Architecture, ...]  # the first one per model class is its default on save
    from_hf: Callable[[dict[str, Any], str], Any]  # (config.json dict, source) -> config
    to_hf: Callable[[Any], dict[str, Any]]  # config -> config.json keys (without architectures / model_type)
    key_map: Callable[[Any, Any], list]  # (config, checkpoint.Layout) -> [checkpoint.Rule]
    probe: str  # a tensor every checkpoint has, under the body prefix: finds the prefix on load
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # config fields every checkpoint has
    causal: bool = False  # always causal (a config may still ask for it: ModelConfig.is_decoder)
    pooler_probe: str | None = None  # a pooler tensor under the prefix: its presence means "has a pooler"
    head_tensors: tuple[str, ...] = ()  # name prefixes of task heads a body loader leaves unused, silently
    gguf: GGUFFormat | None = None

    def architectures_for(self, model: type) -> tuple[Architecture, ...]:
        return tuple(a for a in self.architectures if a.model is model)

    def architecture(self, name: str) -> Architecture | None:
        return next((a for a in self.architectures if a.name == name), None)


_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family (once per model_type); returns it, so a file can end with `FAMILY = register(...)`."""
    old = _FAMILIES.get(family.model_type)
    if old is not None and old is not family:
        raise ValueError(f"model_type {family.model_type!r} is already registered (by {old.title})")
    _FAMILIES[family.model_type] = family
    return family


def unregister(model_type: str) -> None:
    """Remove a family (tests register toy families and take them out again)."""
    _FAMILIES.pop(model_type, None)


def names() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def families() -> tuple[Family, ...]:
    return tuple(_FAMILIES.values())


def family(model_type: str | None, source: str = "") -> Family:
    """The family of `model_type`; ValueError naming `source` (a file) and the known ones if none."""
    f = _FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if f is None:
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}unsupported model_type {model_type!r}; expected one of {names()}")
    return f


def gguf_family(arch: str | None) -> Family | None:
    """The family whose GGUF files say `general.architecture = arch`."""
    return next((f for f in _FAMILIES.values() if f.gguf is not None and f.gguf.arch == arch), None)
