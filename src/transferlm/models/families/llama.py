"""The Llama family (Touvron et al. 2023; SmolLM2 is one): `model_type` "llama" of Hugging Face,
as a `Decoder` (LlamaForCausalLM; body under "model."), and llama.cpp's GGUF files of
`general.architecture` "llama" (metadata -> config, tensor names, and the rotary Q/K row
permutation that convert_hf_to_gguf.py applies, undone by checkpoint.gguf_unpermute).

What this file does not do: build modules (decoder.py), read or write files or dequantise GGUF
tensors (checkpoint.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from ..checkpoint import CheckpointError, Layout, Rule, RuleList, gguf_field, gguf_unpermute, qkv_split
from ..config import ModelConfig, hf_activation, hf_extra
from ..decoder import Decoder
from ..registry import Architecture, Family, GGUFFormat, register


def from_hf(d: dict[str, Any], source: str) -> ModelConfig:
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise ValueError(f"{source}: unsupported rope_type {rope_type!r} (only 'default' rotary)")
    theta = rope.get("rope_theta", d.get("rope_theta", 10000.0))
    keys = {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
            "rope_parameters", "rope_scaling", "attention_bias", "attention_dropout", "mlp_bias", "head_dim",
            "tie_word_embeddings", "initializer_range", "pad_token_id", "bos_token_id", "eos_token_id",
            "pretraining_tp"}
    return ModelConfig(
        model_type="llama", vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
        num_layers=d["num_hidden_layers"], num_heads=d["num_attention_heads"],
        num_kv_heads=d.get("num_key_value_heads") or d["num_attention_heads"], head_dim=d.get("head_dim"),
        intermediate_size=d["intermediate_size"], max_position_embeddings=d.get("max_position_embeddings", 2048),
        type_vocab_size=0, position_embedding="rotary", rope_theta=float(theta), norm="rmsnorm",
        norm_eps=d.get("rms_norm_eps", 1e-6), pre_norm=True, activation=hf_activation(d.get("hidden_act", "silu"), source),
        gated_mlp=True, attention_bias=bool(d.get("attention_bias", False)), mlp_bias=bool(d.get("mlp_bias", False)),
        tie_word_embeddings=d.get("tie_word_embeddings", False), add_pooler=False, hidden_dropout=0.0,
        attention_dropout=d.get("attention_dropout", 0.0), initializer_range=d.get("initializer_range", 0.02),
        pad_token_id=d.get("pad_token_id"), bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"),
        extra=hf_extra(d, keys))


def to_hf(c: ModelConfig) -> dict[str, Any]:
    return {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
            "num_key_value_heads": c.kv_heads, "head_dim": c.head_size, "hidden_act": c.activation,
            "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.norm_eps,
            "rope_parameters": {"rope_theta": c.rope_theta, "rope_type": "default"},
            "rope_theta": c.rope_theta, "attention_bias": c.attention_bias, "mlp_bias": c.mlp_bias,
            "attention_dropout": c.attention_dropout, "tie_word_embeddings": c.tie_word_embeddings,
            "initializer_range": c.initializer_range, "pad_token_id": c.pad_token_id,
            "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id}


def key_map(config: ModelConfig, layout: Layout) -> list[Rule]:
    """Our parameter names <-> Llama's (modeling_llama.py names)."""
    r = RuleList(layout)
    p, ab, mb, qkv = layout.prefix, config.attention_bias, config.mlp_bias, qkv_split(config)
    r.add("embeddings.word_embeddings.weight", f"{p}embed_tokens.weight")
    for i in range(config.num_layers):
        L, o = f"{p}layers.{i}.", f"layers.{i}."
        sa = f"{L}self_attn."
        r.add(o + "attn_norm.weight", f"{L}input_layernorm.weight")
        r.linear(o + "attn.qkv_proj", (sa + "q_proj", sa + "k_proj", sa + "v_proj"), ab, qkv)
        r.linear(o + "attn.o_proj", sa + "o_proj", ab)
        r.add(o + "mlp_norm.weight", f"{L}post_attention_layernorm.weight")
        for proj in ("gate_proj", "up_proj", "down_proj"):
            r.linear(f"{o}mlp.{proj}", f"{L}mlp.{proj}", mb)
    r.add("final_norm.weight", f"{p}norm.weight")
    if layout.lm_head and not config.tie_word_embeddings:
        r.add("lm_head.decoder.weight", f"{layout.head_prefix}lm_head.weight")
    return r


# ---- GGUF (llama.cpp) -------------------------------------------------------------------------
def gguf_key_map(config: ModelConfig, layout: Layout) -> list[Rule]:
    """Our parameter names <-> llama.cpp's GGUF names (gguf.constants.MODEL_TENSOR / TENSOR_NAMES)."""
    r = RuleList(layout)
    p, ab, mb, qkv = layout.prefix, config.attention_bias, config.mlp_bias, qkv_split(config)
    r.add("embeddings.word_embeddings.weight", "token_embd.weight")
    for i in range(config.num_layers):
        L, o = f"blk.{i}.", f"layers.{i}."
        r.add(o + "attn_norm.weight", L + "attn_norm.weight")
        r.linear(o + "attn.qkv_proj", (L + "attn_q", L + "attn_k", L + "attn_v"), ab, qkv)
        r.linear(o + "attn.o_proj", L + "attn_output", ab)
        r.add(o + "mlp_norm.weight", L + "ffn_norm.weight")
        for ours, hf in (("gate_proj", "ffn_gate"), ("up_proj", "ffn_up"), ("down_proj", "ffn_down")):
            r.linear(f"{o}mlp.{ours}", L + hf, mb)
    r.add("final_norm.weight", "output_norm.weight")
    if layout.lm_head and not config.tie_word_embeddings:
        r.add("lm_head.decoder.weight", "output.weight")
    return r


def from_gguf(reader: Any, source: str) -> ModelConfig:
    """The config from a GGUF file's `llama.*` metadata (shapes) and its tensors (biases, tying)."""
    names = {t.name for t in reader.tensors}

    def need(key: str) -> Any:
        v = gguf_field(reader, f"llama.{key}")
        if v is None:
            raise CheckpointError(f"{source}: GGUF metadata key 'llama.{key}' is missing")
        return v

    emb = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if emb is None:
        raise CheckpointError(f"{source}: missing tensor 'token_embd.weight'")
    C, H = int(need("embedding_length")), int(need("attention.head_count"))
    rope_dim = gguf_field(reader, "llama.rope.dimension_count")
    if rope_dim is not None and int(rope_dim) != C // H:
        raise CheckpointError(f"{source}: rotary on {rope_dim} of {C // H} head channels is not supported")
    if gguf_field(reader, "llama.rope.scaling.type") not in (None, "none"):
        raise CheckpointError(f"{source}: rope scaling is not supported")
    return ModelConfig(
        model_type="llama", vocab_size=int(emb.shape[-1]), hidden_size=C, num_layers=int(need("block_count")),
        num_heads=H, num_kv_heads=int(gguf_field(reader, "llama.attention.head_count_kv", H)),
        intermediate_size=int(need("feed_forward_length")),
        max_position_embeddings=int(gguf_field(reader, "llama.context_length", 2048)), type_vocab_size=0,
        position_embedding="rotary", rope_theta=float(gguf_field(reader, "llama.rope.freq_base", 10000.0)),
        norm="rmsnorm", norm_eps=float(need("attention.layer_norm_rms_epsilon")), pre_norm=True,
        activation="silu", gated_mlp=True, attention_bias="blk.0.attn_q.bias" in names,
        mlp_bias="blk.0.ffn_up.bias" in names, tie_word_embeddings="output.weight" not in names,
        add_pooler=False, hidden_dropout=0.0, attention_dropout=0.0,
        pad_token_id=gguf_field(reader, "tokenizer.ggml.padding_token_id"),
        bos_token_id=gguf_field(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=gguf_field(reader, "tokenizer.ggml.eos_token_id"))


def gguf_transform(config: ModelConfig) -> Callable[[str, Tensor], Tensor]:
    """Undo llama.cpp's rotary permutation of the Q and K rows (weights and, if any, biases)."""
    def unpermute(name: str, t: Tensor) -> Tensor:
        if ".attn_q." in name:
            return gguf_unpermute(t, config.num_heads)
        if ".attn_k." in name:
            return gguf_unpermute(t, config.kv_heads)
        return t

    return unpermute


FAMILY = register(Family(
    model_type="llama", title="Llama",
    architectures=(Architecture("LlamaForCausalLM", Decoder, "model.", lm_head=True),),
    from_hf=from_hf, to_hf=to_hf, key_map=key_map, probe="embed_tokens.weight",
    fixed=dict(position_embedding="rotary", norm="rmsnorm", pre_norm=True, gated_mlp=True),
    causal=True, gguf=GGUFFormat(arch="llama", config=from_gguf, key_map=gguf_key_map, transform=gguf_transform),
))
