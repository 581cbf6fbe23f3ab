"""The BERT family (Devlin et al. 2019): `model_type` "bert" of Hugging Face, both as an encoder
(`Encoder`: BertModel, BertFor*) and as a decoder with optional cross-attention (`Decoder`:
BertLMHeadModel, the decoder half of BERT2BERT).

Everything BERT-specific about checkpoints is here: the architecture names and where our model
sits in each (body under "bert." for BertFor*, the pooler only where BertModel keeps it), the
config.json mapping and the key map. TF-era LayerNorm gamma/beta names are read by checkpoint.py.

What this file does not do: build modules (encoder.py, decoder.py), read or write files
(checkpoint.py).
"""

from __future__ import annotations

from typing import Any

from ..checkpoint import Layout, Rule, RuleList, qkv_split
from ..config import ModelConfig, hf_activation, hf_extra
from ..decoder import Decoder
from ..encoder import Encoder
from ..registry import Architecture, Family, register

def from_hf(d: dict[str, Any], source: str) -> ModelConfig:
    pos = d.get("position_embedding_type", "absolute")
    if pos != "absolute":
        raise ValueError(f"{source}: unsupported position_embedding_type {pos!r}; only 'absolute'")
    keys = {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
            "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id", "bos_token_id",
            "eos_token_id", "position_embedding_type", "is_decoder", "add_cross_attention",
            "tie_word_embeddings"}
    return ModelConfig(
        model_type="bert", vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
        num_layers=d["num_hidden_layers"], num_heads=d["num_attention_heads"],
        intermediate_size=d["intermediate_size"], max_position_embeddings=d.get("max_position_embeddings", 512),
        type_vocab_size=d.get("type_vocab_size", 2), position_embedding="learned", norm="layernorm",
        norm_eps=d.get("layer_norm_eps", 1e-12), pre_norm=False,
        activation=hf_activation(d.get("hidden_act", "gelu"), source), gated_mlp=False,
        attention_bias=True, mlp_bias=True, tie_word_embeddings=d.get("tie_word_embeddings", True),
        add_pooler=True, is_decoder=bool(d.get("is_decoder", False)),
        add_cross_attention=bool(d.get("add_cross_attention", False)),
        hidden_dropout=d.get("hidden_dropout_prob", 0.1), attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
        initializer_range=d.get("initializer_range", 0.02), pad_token_id=d.get("pad_token_id", 0),
        bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"), extra=hf_extra(d, keys))


def to_hf(c: ModelConfig) -> dict[str, Any]:
    return {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "num_hidden_layers": c.num_layers,
            "num_attention_heads": c.num_heads, "intermediate_size": c.intermediate_size,
            "hidden_act": {"gelu_tanh": "gelu_new"}.get(c.activation, c.activation),
            "hidden_dropout_prob": c.hidden_dropout, "attention_probs_dropout_prob": c.attention_dropout,
            "max_position_embeddings": c.max_position_embeddings, "type_vocab_size": c.type_vocab_size,
            "initializer_range": c.initializer_range, "layer_norm_eps": c.norm_eps,
            "pad_token_id": c.pad_token_id, "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
            "position_embedding_type": "absolute", "is_decoder": c.is_decoder,
            "add_cross_attention": c.add_cross_attention, "tie_word_embeddings": c.tie_word_embeddings}


def key_map(config: ModelConfig, layout: Layout) -> list[Rule]:
    """Our parameter names <-> BERT's (modeling_bert.py names)."""
    r = RuleList(layout)
    p, ab, mb, qkv = layout.prefix, config.attention_bias, config.mlp_bias, qkv_split(config)
    r.add("embeddings.word_embeddings.weight", f"{p}embeddings.word_embeddings.weight")
    r.add("embeddings.position_embeddings.weight", f"{p}embeddings.position_embeddings.weight")
    if config.type_vocab_size:
        r.add("embeddings.token_type_embeddings.weight", f"{p}embeddings.token_type_embeddings.weight")
    r.linear("embeddings.norm", f"{p}embeddings.LayerNorm", True)
    for i in range(config.num_layers):
        L, o = f"{p}encoder.layer.{i}.", f"layers.{i}."
        sa = f"{L}attention.self."
        r.linear(o + "attn.qkv_proj", (sa + "query", sa + "key", sa + "value"), ab, qkv)
        r.linear(o + "attn.o_proj", f"{L}attention.output.dense", ab)
        r.linear(o + "attn_norm", f"{L}attention.output.LayerNorm", True)
        if config.add_cross_attention:
            ca = f"{L}crossattention.self."
            r.linear(o + "cross_attn.q_proj", ca + "query", ab)
            r.linear(o + "cross_attn.kv_proj", (ca + "key", ca + "value"), ab, qkv[1:])
            r.linear(o + "cross_attn.o_proj", f"{L}crossattention.output.dense", ab)
            r.linear(o + "cross_norm", f"{L}crossattention.output.LayerNorm", True)
        r.linear(o + "mlp.fc_in", f"{L}intermediate.dense", mb)
        r.linear(o + "mlp.fc_out", f"{L}output.dense", mb)
        r.linear(o + "mlp_norm", f"{L}output.LayerNorm", True)
    if layout.pooler:
        r.linear("pooler.dense", f"{p}pooler.dense", True)
    if layout.lm_head:  # BertLMPredictionHead
        hp = f"{layout.head_prefix}cls.predictions."
        r.linear("lm_head.dense", hp + "transform.dense", True)
        r.linear("lm_head.norm", hp + "transform.LayerNorm", True)
        r.add("lm_head.decoder.bias", hp + "bias")
        if not config.tie_word_embeddings:
            r.add("lm_head.decoder.weight", hp + "decoder.weight")
    return r


# HF's BertModel(add_pooling_layer=True) underlies these; the others are built without a pooler.
_ENCODER = dict(is_decoder=False, add_cross_attention=False)
FAMILY = register(Family(
    model_type="bert", title="BERT",
    architectures=(
        Architecture("BertModel", Encoder, pooler=True, config=_ENCODER),
        Architecture("BertForPreTraining", Encoder, "bert.", pooler=True, heads=True, config=_ENCODER),
        Architecture("BertForMaskedLM", Encoder, "bert.", heads=True, config=_ENCODER),
        Architecture("BertForNextSentencePrediction", Encoder, "bert.", pooler=True, heads=True, config=_ENCODER),
        Architecture("BertForSequenceClassification", Encoder, "bert.", pooler=True, heads=True, config=_ENCODER),
        Architecture("BertForMultipleChoice", Encoder, "bert.", pooler=True, heads=True, config=_ENCODER),
        Architecture("BertForTokenClassification", Encoder, "bert.", heads=True, config=_ENCODER),
        Architecture("BertForQuestionAnswering", Encoder, "bert.", heads=True, config=_ENCODER),
        Architecture("BertLMHeadModel", Decoder, "bert.", lm_head=True, config=dict(is_decoder=True)),
    ),
    from_hf=from_hf, to_hf=to_hf, key_map=key_map, probe="embeddings.word_embeddings.weight",
    fixed=dict(position_embedding="learned", norm="layernorm", pre_norm=False, gated_mlp=False),
    causal=False, pooler_probe="pooler.dense.weight", head_tensors=("cls.", "classifier.", "qa_outputs."),
))
