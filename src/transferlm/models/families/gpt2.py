"""The GPT-2 family (Radford et al. 2019): `model_type` "gpt2" of Hugging Face, as a `Decoder`
(GPT2LMHeadModel; body under "transformer.").

GPT-2 stores its projections as Conv1D modules, whose weight is (in, out): the transpose of
nn.Linear's (out, in); the key map transposes exactly the `GPT2_TRANSPOSED` tensors.

What this file does not do: build modules (decoder.py), read or write files (checkpoint.py).
"""

from __future__ import annotations

from typing import Any

from ..checkpoint import Layout, Rule, RuleList, qkv_split
from ..config import ModelConfig, hf_activation, hf_extra
from ..decoder import Decoder
from ..registry import Architecture, Family, register

# GPT-2 uses Conv1D modules whose weight is (in, out), the transpose of nn.Linear's (out, in).
GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def from_hf(d: dict[str, Any], source: str) -> ModelConfig:
    for k, ok in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                  ("reorder_and_upcast_attn", False)):
        if d.get(k, ok) != ok:
            raise ValueError(f"{source}: unsupported GPT-2 option {k}={d[k]!r} (only {ok})")
    n_embd = d["n_embd"]
    keys = {"vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "activation_function",
            "resid_pdrop", "embd_pdrop", "attn_pdrop", "layer_norm_epsilon", "initializer_range",
            "bos_token_id", "eos_token_id", "pad_token_id", "tie_word_embeddings", "add_cross_attention",
            "scale_attn_weights", "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "n_ctx"}
    if d.get("add_cross_attention"):
        raise ValueError(f"{source}: GPT-2 with cross-attention is not supported; use a BERT decoder")
    return ModelConfig(
        model_type="gpt2", vocab_size=d["vocab_size"], hidden_size=n_embd, num_layers=d["n_layer"],
        num_heads=d["n_head"], intermediate_size=d.get("n_inner") or 4 * n_embd,
        max_position_embeddings=d.get("n_positions", 1024), type_vocab_size=0, position_embedding="learned",
        norm="layernorm", norm_eps=d.get("layer_norm_epsilon", 1e-5), pre_norm=True,
        activation=hf_activation(d.get("activation_function", "gelu_new"), source), gated_mlp=False,
        attention_bias=True, mlp_bias=True, tie_word_embeddings=d.get("tie_word_embeddings", True),
        add_pooler=False, hidden_dropout=d.get("resid_pdrop", 0.1), attention_dropout=d.get("attn_pdrop", 0.1),
        initializer_range=d.get("initializer_range", 0.02), pad_token_id=d.get("pad_token_id"),
        bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"), extra=hf_extra(d, keys))


def to_hf(c: ModelConfig) -> dict[str, Any]:
    return {"vocab_size": c.vocab_size, "n_positions": c.max_position_embeddings, "n_embd": c.hidden_size,
            "n_layer": c.num_layers, "n_head": c.num_heads, "n_inner": c.intermediate_size,
            "activation_function": {"gelu_tanh": "gelu_new"}.get(c.activation, c.activation),
            "resid_pdrop": c.hidden_dropout, "embd_pdrop": c.hidden_dropout, "attn_pdrop": c.attention_dropout,
            "layer_norm_epsilon": c.norm_eps, "initializer_range": c.initializer_range,
            "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
            "tie_word_embeddings": c.tie_word_embeddings}


def key_map(config: ModelConfig, layout: Layout) -> list[Rule]:
    """Our parameter names <-> GPT-2's (modeling_gpt2.py names)."""
    r = RuleList(layout)
    p, ab, mb, qkv = layout.prefix, config.attention_bias, config.mlp_bias, qkv_split(config)
    r.add("embeddings.word_embeddings.weight", f"{p}wte.weight")
    r.add("embeddings.position_embeddings.weight", f"{p}wpe.weight")
    for i in range(config.num_layers):
        L, o = f"{p}h.{i}.", f"layers.{i}."
        for ours, hf, bias in (("attn_norm", "ln_1", True), ("attn.qkv_proj", "attn.c_attn", ab),
                               ("attn.o_proj", "attn.c_proj", ab), ("mlp_norm", "ln_2", True),
                               ("mlp.fc_in", "mlp.c_fc", mb), ("mlp.fc_out", "mlp.c_proj", mb)):
            r.linear(o + ours, L + hf, bias, transpose=f"{hf}.weight" in GPT2_TRANSPOSED)
    r.linear("final_norm", f"{p}ln_f", True)
    if layout.lm_head and not config.tie_word_embeddings:
        r.add("lm_head.decoder.weight", f"{layout.head_prefix}lm_head.weight")
    return r


FAMILY = register(Family(
    model_type="gpt2", title="GPT-2",
    architectures=(Architecture("GPT2LMHeadModel", Decoder, "transformer.", lm_head=True),),
    from_hf=from_hf, to_hf=to_hf, key_map=key_map, probe="wte.weight",
    fixed=dict(position_embedding="learned", norm="layernorm", pre_norm=True, gated_mlp=False),
    causal=True,
))
