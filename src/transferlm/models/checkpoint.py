"""Checkpoints in and out: Hugging Face folders (BERT, GPT-2, Llama, BERT2BERT) and GGUF files.

The key map between our parameter names and the Hugging Face (and llama.cpp GGUF) names is
written down once, in `key_map` below, as a list of `Rule`s: one of our tensors is made of one or
more checkpoint tensors, concatenated along dim 0 (our fused Q/K/V projection), optionally
transposed first (GPT-2's Conv1D layers store W^T: the `GPT2_TRANSPOSED` list). Loading checks
every tensor's presence and shape and fails naming the tensor; no weight is left random.
Saving inverts the same rules, so transformers' Auto classes load our folders with no missing or
unexpected keys.

Weights are read with safetensors, or `torch.load(weights_only=True)` for pytorch_model.bin;
never unpickled. Files are written atomically (temp file, fsync, os.replace).

What this file does not do: tokenizers (tokenization/io.py), optimizer or trainer state
(training/), quantised inference (GGUF tensors are dequantised to fp32 on load).
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

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_BIN = "pytorch_model.bin"
CONFIG = "config.json"

# GPT-2 uses Conv1D modules whose weight is (in, out), the transpose of nn.Linear's (out, in).
GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# BERT architectures built on BertModel(add_pooling_layer=True); the others have no pooler weights.
BERT_WITH_POOLER = {"BertModel", "BertForPreTraining", "BertForNextSentencePrediction",
                    "BertForSequenceClassification", "BertForMultipleChoice"}
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


# ---- THE key map --------------------------------------------------------------------------------
def key_map(config: ModelConfig, fmt: str, prefix: str = "", pooler: bool = False, lm_head: bool = False,
            head_prefix: str = "", ours_prefix: str = "") -> list[Rule]:
    """All rules for a model of `config` in checkpoint format `fmt` ("hf" or "gguf").

    prefix: where the body's names start in the checkpoint ("bert.", "transformer.", "model.");
    head_prefix: where the LM head's names start; ours_prefix: where ours start (seq2seq parts).
    pooler / lm_head: whether the model has a BERT pooler / an LM head to map.
    """
    H, KV, hs, C = config.num_heads, config.kv_heads, config.head_size, config.hidden_size
    qkv_split, kv_split = (H * hs, KV * hs, KV * hs), (KV * hs, KV * hs)
    rules: list[Rule] = []

    def add(ours: str, *hf: str, transpose: bool = False, split: tuple[int, ...] | None = None) -> None:
        rules.append(Rule(ours_prefix + ours, tuple(hf), transpose, split))

    def linear(ours: str, hf: str | tuple[str, ...], bias: bool, split: tuple[int, ...] | None = None,
               transpose: bool = False) -> None:
        names = (hf,) if isinstance(hf, str) else hf
        add(f"{ours}.weight", *(f"{n}.weight" for n in names), transpose=transpose, split=split)
        if bias:
            add(f"{ours}.bias", *(f"{n}.bias" for n in names), split=split)

    _check_family(config)
    ab, mb = config.attention_bias, config.mlp_bias
    mt = config.model_type if fmt == "hf" else f"{config.model_type}-gguf"
    if mt == "bert":
        p = prefix
        add("embeddings.word_embeddings.weight", f"{p}embeddings.word_embeddings.weight")
        add("embeddings.position_embeddings.weight", f"{p}embeddings.position_embeddings.weight")
        if config.type_vocab_size:
            add("embeddings.token_type_embeddings.weight", f"{p}embeddings.token_type_embeddings.weight")
        linear("embeddings.norm", f"{p}embeddings.LayerNorm", True)
        for i in range(config.num_layers):
            L, o = f"{p}encoder.layer.{i}.", f"layers.{i}."
            sa = f"{L}attention.self."
            linear(o + "attn.qkv_proj", (sa + "query", sa + "key", sa + "value"), ab, qkv_split)
            linear(o + "attn.o_proj", f"{L}attention.output.dense", ab)
            linear(o + "attn_norm", f"{L}attention.output.LayerNorm", True)
            if config.add_cross_attention:
                ca = f"{L}crossattention.self."
                linear(o + "cross_attn.q_proj", ca + "query", ab)
                linear(o + "cross_attn.kv_proj", (ca + "key", ca + "value"), ab, kv_split)
                linear(o + "cross_attn.o_proj", f"{L}crossattention.output.dense", ab)
                linear(o + "cross_norm", f"{L}crossattention.output.LayerNorm", True)
            linear(o + "mlp.fc_in", f"{L}intermediate.dense", mb)
            linear(o + "mlp.fc_out", f"{L}output.dense", mb)
            linear(o + "mlp_norm", f"{L}output.LayerNorm", True)
        if pooler:
            linear("pooler.dense", f"{p}pooler.dense", True)
        if lm_head:  # BertLMPredictionHead
            hp = f"{head_prefix}cls.predictions."
            linear("lm_head.dense", hp + "transform.dense", True)
            linear("lm_head.norm", hp + "transform.LayerNorm", True)
            add("lm_head.decoder.bias", hp + "bias")
            if not config.tie_word_embeddings:
                add("lm_head.decoder.weight", hp + "decoder.weight")
    elif mt == "gpt2":
        p = prefix
        add("embeddings.word_embeddings.weight", f"{p}wte.weight")
        add("embeddings.position_embeddings.weight", f"{p}wpe.weight")
        for i in range(config.num_layers):
            L, o = f"{p}h.{i}.", f"layers.{i}."
            for ours, hf, bias in (("attn_norm", "ln_1", True), ("attn.qkv_proj", "attn.c_attn", ab),
                                   ("attn.o_proj", "attn.c_proj", ab), ("mlp_norm", "ln_2", True),
                                   ("mlp.fc_in", "mlp.c_fc", mb), ("mlp.fc_out", "mlp.c_proj", mb)):
                linear(o + ours, L + hf, bias, transpose=f"{hf}.weight" in GPT2_TRANSPOSED)
        linear("final_norm", f"{p}ln_f", True)
        if lm_head and not config.tie_word_embeddings:
            add("lm_head.decoder.weight", f"{head_prefix}lm_head.weight")
    elif mt == "llama":
        p = prefix
        add("embeddings.word_embeddings.weight", f"{p}embed_tokens.weight")
        for i in range(config.num_layers):
            L, o = f"{p}layers.{i}.", f"layers.{i}."
            sa = f"{L}self_attn."
            add(o + "attn_norm.weight", f"{L}input_layernorm.weight")
            linear(o + "attn.qkv_proj", (sa + "q_proj", sa + "k_proj", sa + "v_proj"), ab, qkv_split)
            linear(o + "attn.o_proj", sa + "o_proj", ab)
            add(o + "mlp_norm.weight", f"{L}post_attention_layernorm.weight")
            for proj in ("gate_proj", "up_proj", "down_proj"):
                linear(f"{o}mlp.{proj}", f"{L}mlp.{proj}", mb)
        add("final_norm.weight", f"{p}norm.weight")
        if lm_head and not config.tie_word_embeddings:
            add("lm_head.decoder.weight", f"{head_prefix}lm_head.weight")
    elif mt == "llama-gguf":  # llama.cpp names (gguf.constants.MODEL_TENSOR / TENSOR_NAMES)
        add("embeddings.word_embeddings.weight", "token_embd.weight")
        for i in range(config.num_layers):
            L, o = f"blk.{i}.", f"layers.{i}."
            add(o + "attn_norm.weight", L + "attn_norm.weight")
            linear(o + "attn.qkv_proj", (L + "attn_q", L + "attn_k", L + "attn_v"), ab, qkv_split)
            linear(o + "attn.o_proj", L + "attn_output", ab)
            add(o + "mlp_norm.weight", L + "ffn_norm.weight")
            for ours, hf in (("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down")):
                linear(f"{o}mlp.{ours}", L + hf, mb)
        add("final_norm.weight", "output_norm.weight")
        if lm_head and not config.tie_word_embeddings:
            add("lm_head.decoder.weight", "output.weight")
    else:
        raise CheckpointError(f"no key map for model_type {config.model_type!r} in format {fmt!r}")
    return rules


# What each Hugging Face family is; a config switched away from it has no HF checkpoint layout.
_FAMILY = {"bert": dict(position_embedding="learned", norm="layernorm", pre_norm=False, gated_mlp=False),
           "gpt2": dict(position_embedding="learned", norm="layernorm", pre_norm=True, gated_mlp=False),
           "llama": dict(position_embedding="rotary", norm="rmsnorm", pre_norm=True, gated_mlp=True)}


def _check_family(config: ModelConfig) -> None:
    for field, want in _FAMILY[config.model_type].items():
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


def _old_names(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
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


def load_encoder(folder: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    from .encoder import Encoder

    raw = read_config(folder)
    config = ModelConfig.from_hf_dict(raw, source=str(Path(folder) / CONFIG))
    if config.model_type != "bert":
        raise CheckpointError(f"{folder}: Encoder loads BERT checkpoints, this is model_type {config.model_type!r}")
    config = config.replace(is_decoder=False, add_cross_attention=False)
    tensors, source = read_tensors(folder)
    tensors = _old_names(tensors)
    prefix = _find_prefix(tensors, "embeddings.word_embeddings.weight", ("", "bert."), source)
    has_pooler = f"{prefix}pooler.dense.weight" in tensors
    model = Encoder(config.replace(add_pooler=has_pooler))
    rules = key_map(model.config, "hf", prefix=prefix, pooler=has_pooler)
    load_rules(model, tensors, rules, source, dtype, expected_extra=("cls.", "classifier.", "qa_outputs."))
    _cast(model, dtype)
    return model.eval()


def load_decoder(path: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    from .decoder import Decoder

    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return load_gguf(path, dtype)
    if path.is_dir() and not (path / CONFIG).exists():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return load_gguf(ggufs[0], dtype)
    raw = read_config(path)
    config = ModelConfig.from_hf_dict(raw, source=str(path / CONFIG))
    if config.model_type == "bert":
        config = config.replace(is_decoder=True)
    tensors, source = read_tensors(path)
    tensors = _old_names(tensors)
    probe, candidates = {"gpt2": ("wte.weight", ("transformer.", "")), "llama": ("embed_tokens.weight", ("model.", "")),
                         "bert": ("embeddings.word_embeddings.weight", ("bert.", ""))}[config.model_type]
    prefix = _find_prefix(tensors, probe, candidates, source)
    model = Decoder(config)
    rules = key_map(config, "hf", prefix=prefix, lm_head=True)
    load_rules(model, tensors, rules, source, dtype)
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


def _gguf_field(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def gguf_config(reader: Any, source: str) -> ModelConfig:
    arch = _gguf_field(reader, "general.architecture")
    if arch != "llama":
        raise CheckpointError(f"{source}: unsupported GGUF architecture {arch!r} (only 'llama' family)")
    names = {t.name for t in reader.tensors}

    def need(key: str) -> Any:
        v = _gguf_field(reader, f"llama.{key}")
        if v is None:
            raise CheckpointError(f"{source}: GGUF metadata key 'llama.{key}' is missing")
        return v

    emb = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if emb is None:
        raise CheckpointError(f"{source}: missing tensor 'token_embd.weight'")
    C, H = int(need("embedding_length")), int(need("attention.head_count"))
    rope_dim = _gguf_field(reader, "llama.rope.dimension_count")
    if rope_dim is not None and int(rope_dim) != C // H:
        raise CheckpointError(f"{source}: rotary on {rope_dim} of {C // H} head channels is not supported")
    if _gguf_field(reader, "llama.rope.scaling.type") not in (None, "none"):
        raise CheckpointError(f"{source}: rope scaling is not supported")
    return ModelConfig(
        model_type="llama", vocab_size=int(emb.shape[-1]), hidden_size=C, num_layers=int(need("block_count")),
        num_heads=H, num_kv_heads=int(_gguf_field(reader, "llama.attention.head_count_kv", H)),
        intermediate_size=int(need("feed_forward_length")),
        max_position_embeddings=int(_gguf_field(reader, "llama.context_length", 2048)), type_vocab_size=0,
        position_embedding="rotary", rope_theta=float(_gguf_field(reader, "llama.rope.freq_base", 10000.0)),
        norm="rmsnorm", norm_eps=float(need("attention.layer_norm_rms_epsilon")), pre_norm=True,
        activation="silu", gated_mlp=True, attention_bias="blk.0.attn_q.bias" in names,
        mlp_bias="blk.0.ffn_up.bias" in names, tie_word_embeddings="output.weight" not in names,
        add_pooler=False, hidden_dropout=0.0, attention_dropout=0.0,
        pad_token_id=_gguf_field(reader, "tokenizer.ggml.padding_token_id"),
        bos_token_id=_gguf_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=_gguf_field(reader, "tokenizer.ggml.eos_token_id"))


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


def load_gguf(path: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A Llama-family Decoder from a GGUF file (any quantisation gguf.quants can dequantise)."""
    from gguf import GGUFReader

    from .decoder import Decoder

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GGUF file")
    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable GGUF file ({e})") from None
    config = gguf_config(reader, str(path))
    tensors = read_gguf_tensors(reader)

    def unpermute(name: str, t: Tensor) -> Tensor:  # weights and (if any) biases of Q and K
        if ".attn_q." in name:
            return gguf_unpermute(t, config.num_heads)
        if ".attn_k." in name:
            return gguf_unpermute(t, config.kv_heads)
        return t

    model = Decoder(config)
    load_rules(model, tensors, key_map(config, "gguf", lm_head=True), str(path), dtype, transform=unpermute)
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
    """Write `model` (Encoder or Decoder) as a Hugging Face folder."""
    from .decoder import Decoder
    from .encoder import Encoder

    config: ModelConfig = model.config
    extra = {k: v.detach().contiguous().clone() for k, v in (extra_tensors or {}).items()}
    if isinstance(model, Encoder):
        arch = (architectures or ["BertModel"])[0]
        if extra and arch == "BertModel":
            raise CheckpointError("extra_tensors are head weights: name the architecture that holds them, "
                                  "e.g. architectures=['BertForMaskedLM']")
        if not arch.startswith("Bert"):
            raise CheckpointError(f"unknown architecture {arch!r} for a BERT encoder")
        prefix = "" if arch == "BertModel" else "bert."
        pooler = arch in BERT_WITH_POOLER
        if pooler and model.pooler is None:
            raise CheckpointError(f"{arch} needs pooler weights, but this encoder has no pooler")
        tensors = export_rules(model, key_map(config, "hf", prefix=prefix, pooler=pooler))
        hf = config.to_hf_dict([arch])
    elif isinstance(model, Decoder):
        default = {"bert": "BertLMHeadModel", "gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}
        arch = (architectures or [default[config.model_type]])[0]
        if arch != default[config.model_type]:
            raise CheckpointError(f"unknown architecture {arch!r} for a {config.model_type} decoder "
                                  f"(expected {default[config.model_type]})")
        prefix = {"bert": "bert.", "gpt2": "transformer.", "llama": "model."}[config.model_type]
        tensors = export_rules(model, key_map(config, "hf", prefix=prefix, lm_head=True))
        hf = config.to_hf_dict([arch])
    else:
        raise CheckpointError(f"cannot save a {type(model).__name__} with save_model")
    clash = set(extra) & set(tensors)
    if clash:
        raise CheckpointError(f"extra_tensors repeat model tensors: {sorted(clash)[:4]}")
    tensors.update(extra)
    return write_folder(folder, hf, tensors)


# ---- encoder-decoder (transformers' EncoderDecoderModel with BERT halves) ------------------------
def _seq2seq_rules(enc: ModelConfig, dec: ModelConfig, pooler: bool) -> list[Rule]:
    return (key_map(enc, "hf", prefix="encoder.", pooler=pooler, ours_prefix="encoder.")
            + key_map(dec, "hf", prefix="decoder.bert.", lm_head=True, head_prefix="decoder.", ours_prefix="decoder."))


def load_seq2seq(folder: str | Path, dtype: torch.dtype = torch.float32) -> nn.Module:
    from .seq2seq import Seq2Seq

    folder = Path(folder)
    raw = read_config(folder)
    source = str(folder / CONFIG)
    if raw.get("model_type") != "encoder-decoder":
        raise CheckpointError(f"{source}: expected model_type 'encoder-decoder', got {raw.get('model_type')!r}")
    for part in ("encoder", "decoder"):
        if not isinstance(raw.get(part), dict):
            raise CheckpointError(f"{source}: missing the {part!r} config")
        if raw[part].get("model_type") != "bert":
            raise CheckpointError(f"{source}: unsupported {part} model_type {raw[part].get('model_type')!r} "
                                  "(only BERT halves)")
    enc = ModelConfig.from_hf_dict(raw["encoder"], source=f"{source} (encoder)")
    dec = ModelConfig.from_hf_dict(raw["decoder"], source=f"{source} (decoder)")
    tensors, wsource = read_tensors(folder)
    tensors = _old_names(tensors)
    pooler = "encoder.pooler.dense.weight" in tensors
    model = Seq2Seq(enc.replace(add_pooler=pooler), dec, decoder_start_token_id=raw.get("decoder_start_token_id"),
                    pad_token_id=raw.get("pad_token_id"))
    load_rules(model, tensors, _seq2seq_rules(model.encoder.config, model.decoder.config, pooler), wsource, dtype)
    _cast(model, dtype)
    return model.eval()


def save_seq2seq(model: nn.Module, folder: str | Path) -> Path:
    enc, dec = model.encoder.config, model.decoder.config
    pooler = model.encoder.pooler is not None
    tensors = export_rules(model, _seq2seq_rules(enc, dec, pooler))
    hf = {"architectures": ["EncoderDecoderModel"], "model_type": "encoder-decoder", "is_encoder_decoder": True,
          "encoder": enc.to_hf_dict(["BertModel"]), "decoder": dec.to_hf_dict(["BertLMHeadModel"]),
          "decoder_start_token_id": model.decoder_start_token_id, "pad_token_id": model.pad_token_id,
          "tie_encoder_decoder": False}
    return write_folder(folder, hf, tensors)
