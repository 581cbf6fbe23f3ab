"""`ModelConfig`: the one shape description every Transformer in `models/` is built from.

One flat dataclass covers the three families we build (BERT encoders and BERT decoders,
GPT-2 and Llama decoders): the family only changes a handful of switches (post-LN or pre-LN,
LayerNorm or RMSNorm, GELU or SwiGLU, learned or rotary positions). Named presets give the
shapes used in the toolkit; `from_hf_dict` / `to_hf_dict` translate Hugging Face `config.json`
dictionaries of `model_type` "bert", "gpt2" and "llama".

What this file does not do: read or write files (checkpoint.py does), build modules, or know
anything about training (dropout rates are here because they are part of the architecture's
published definition, not because the model decides how it is trained).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MODEL_TYPES = ("bert", "gpt2", "llama")
_ACTIVATIONS = ("gelu", "gelu_tanh", "silu", "relu")
_POSITIONS = ("learned", "sinusoidal", "rotary")
_NORMS = ("layernorm", "rmsnorm")


@dataclass
class ModelConfig:
    # Which Hugging Face family the key map and config.json follow.
    model_type: str = "bert"
    # BERT's uncased WordPiece vocabulary (Devlin et al. 2019), the most common default.
    vocab_size: int = 30522
    # BERT-base width (Devlin et al. 2019, Table 1 / sec. 3).
    hidden_size: int = 768
    # BERT-base depth.
    num_layers: int = 12
    # 64 channels per head throughout Devlin et al. and Turc et al. 2019.
    num_heads: int = 12
    # None = as many key/value heads as query heads (multi-head attention); fewer gives
    # grouped-query attention (Ainslie et al. 2023), as in Llama / SmolLM2.
    num_kv_heads: int | None = None
    # None = hidden_size // num_heads; Llama configs may give it explicitly.
    head_dim: int | None = None
    # 4 * hidden, the Transformer's feed-forward ratio (Vaswani et al. 2017, sec. 3.3).
    intermediate_size: int = 3072
    # BERT's learned position table length.
    max_position_embeddings: int = 512
    # BERT's two segments A/B; 0 = no token-type embeddings (GPT-2, Llama).
    type_vocab_size: int = 2
    # "learned" (BERT, GPT-2), "sinusoidal" (Vaswani et al. 2017 sec. 3.5) or "rotary"
    # (Su et al. 2021, Llama).
    position_embedding: str = "learned"
    # RoFormer's base 10000; checkpoints override it (SmolLM2 uses 100000).
    rope_theta: float = 10000.0
    # "layernorm" (BERT, GPT-2) or "rmsnorm" (Zhang & Sennrich 2019; Llama).
    norm: str = "layernorm"
    # BERT's LayerNorm epsilon; GPT-2 uses 1e-5, Llama 1e-5 / 1e-6.
    norm_eps: float = 1e-12
    # False = post-LN blocks (Vaswani et al. 2017, BERT): x = LN(x + f(x)), with a LayerNorm on
    # the embeddings. True = pre-LN (GPT-2, Llama): x = x + f(LN(x)), with a final norm.
    pre_norm: bool = False
    # "gelu" (exact erf form, BERT), "gelu_tanh" (GPT-2's approximation), "silu" (Llama's SwiGLU).
    activation: str = "gelu"
    # SwiGLU feed-forward (Shazeer 2020: down(act(gate x) * up x)) instead of up -> act -> down.
    gated_mlp: bool = False
    # BERT and GPT-2 have biases on the attention projections; Llama has none.
    attention_bias: bool = True
    # Same for the feed-forward projections.
    mlp_bias: bool = True
    # Decoders: the output projection shares the input embedding matrix (Press & Wolf 2017).
    tie_word_embeddings: bool = True
    # BERT's pooler: tanh(W h_[CLS]) (Devlin et al. 2019, sec. 3); only encoders use it.
    add_pooler: bool = True
    # True only for decoders built from a BERT config (BertLMHeadModel): causal self-attention.
    is_decoder: bool = False
    # Decoder blocks of an encoder-decoder attend to the encoder output (Vaswani et al. 2017).
    add_cross_attention: bool = False
    # BERT / GPT-2 dropout of 0.1 on embeddings and sub-layer outputs; Llama uses none.
    hidden_dropout: float = 0.1
    # BERT / GPT-2 dropout on attention probabilities.
    attention_dropout: float = 0.1
    # Truncated-normal-ish init std of BERT / GPT-2 (N(0, 0.02)).
    initializer_range: float = 0.02
    # BERT's [PAD] is id 0; decoders usually have none.
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    # Anything from config.json we carry but do not interpret (kept so a round trip keeps it).
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"unknown model_type {self.model_type!r}; expected one of {MODEL_TYPES}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {_ACTIVATIONS}")
        if self.position_embedding not in _POSITIONS:
            raise ValueError(f"unknown position_embedding {self.position_embedding!r}; "
                             f"expected one of {_POSITIONS}")
        if self.norm not in _NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; expected one of {_NORMS}")
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.num_heads % self.kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.kv_heads}")
        if self.position_embedding == "rotary" and self.head_size % 2:
            raise ValueError(f"rotary positions need an even head size, got {self.head_size}")

    # ---- derived shapes -------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads if self.num_kv_heads is not None else self.num_heads

    @property
    def head_size(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_heads

    @property
    def causal(self) -> bool:
        """Decoders (GPT-2, Llama, BERT with is_decoder) mask future positions."""
        return self.model_type in ("gpt2", "llama") or self.is_decoder

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **{"extra": dict(self.extra), **changes})

    # ---- Hugging Face config.json ---------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Build from a Hugging Face config dict; `source` names the file in error messages."""
        mt = d.get("model_type")
        if mt not in _FROM_HF:
            raise ValueError(f"{source}: unsupported model_type {mt!r}; expected one of {MODEL_TYPES}")
        try:
            return _FROM_HF[mt](d, source)
        except KeyError as e:
            raise ValueError(f"{source}: {mt} config is missing the key {e.args[0]!r}") from None

    def to_hf_dict(self, architectures: list[str] | None = None) -> dict[str, Any]:
        """The config.json dict that transformers' Auto classes read back to the same shapes."""
        d = _TO_HF[self.model_type](self)
        out: dict[str, Any] = {"architectures": list(architectures or [_DEFAULT_ARCH[self.model_type]]),
                               "model_type": self.model_type}
        out.update({k: v for k, v in self.extra.items() if k not in d})
        out.update(d)
        return out


_DEFAULT_ARCH = {"bert": "BertModel", "gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}

# Keys that are bookkeeping in HF configs, not shapes; never carried in `extra`.
_IGNORED = {"architectures", "model_type", "transformers_version", "_name_or_path", "torch_dtype",
            "dtype", "use_cache", "gradient_checkpointing"}


def _extra(d: dict[str, Any], used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in used and k not in _IGNORED}


def _hf_act(name: str, source: str) -> str:
    acts = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
            "gelu_fast": "gelu_tanh", "silu": "silu", "swish": "silu", "relu": "relu"}
    if name not in acts:
        raise ValueError(f"{source}: unsupported activation {name!r}; expected one of {sorted(acts)}")
    return acts[name]


def _bert_from_hf(d: dict[str, Any], source: str) -> ModelConfig:
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
        activation=_hf_act(d.get("hidden_act", "gelu"), source), gated_mlp=False,
        attention_bias=True, mlp_bias=True, tie_word_embeddings=d.get("tie_word_embeddings", True),
        add_pooler=True, is_decoder=bool(d.get("is_decoder", False)),
        add_cross_attention=bool(d.get("add_cross_attention", False)),
        hidden_dropout=d.get("hidden_dropout_prob", 0.1), attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
        initializer_range=d.get("initializer_range", 0.02), pad_token_id=d.get("pad_token_id", 0),
        bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"), extra=_extra(d, keys))


def _bert_to_hf(c: ModelConfig) -> dict[str, Any]:
    return {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "num_hidden_layers": c.num_layers,
            "num_attention_heads": c.num_heads, "intermediate_size": c.intermediate_size,
            "hidden_act": {"gelu_tanh": "gelu_new"}.get(c.activation, c.activation),
            "hidden_dropout_prob": c.hidden_dropout, "attention_probs_dropout_prob": c.attention_dropout,
            "max_position_embeddings": c.max_position_embeddings, "type_vocab_size": c.type_vocab_size,
            "initializer_range": c.initializer_range, "layer_norm_eps": c.norm_eps,
            "pad_token_id": c.pad_token_id, "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id,
            "position_embedding_type": "absolute", "is_decoder": c.is_decoder,
            "add_cross_attention": c.add_cross_attention, "tie_word_embeddings": c.tie_word_embeddings}


def _gpt2_from_hf(d: dict[str, Any], source: str) -> ModelConfig:
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
        activation=_hf_act(d.get("activation_function", "gelu_new"), source), gated_mlp=False,
        attention_bias=True, mlp_bias=True, tie_word_embeddings=d.get("tie_word_embeddings", True),
        add_pooler=False, hidden_dropout=d.get("resid_pdrop", 0.1), attention_dropout=d.get("attn_pdrop", 0.1),
        initializer_range=d.get("initializer_range", 0.02), pad_token_id=d.get("pad_token_id"),
        bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"), extra=_extra(d, keys))


def _gpt2_to_hf(c: ModelConfig) -> dict[str, Any]:
    return {"vocab_size": c.vocab_size, "n_positions": c.max_position_embeddings, "n_embd": c.hidden_size,
            "n_layer": c.num_layers, "n_head": c.num_heads, "n_inner": c.intermediate_size,
            "activation_function": {"gelu_tanh": "gelu_new"}.get(c.activation, c.activation),
            "resid_pdrop": c.hidden_dropout, "embd_pdrop": c.hidden_dropout, "attn_pdrop": c.attention_dropout,
            "layer_norm_epsilon": c.norm_eps, "initializer_range": c.initializer_range,
            "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
            "tie_word_embeddings": c.tie_word_embeddings}


def _llama_from_hf(d: dict[str, Any], source: str) -> ModelConfig:
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
        norm_eps=d.get("rms_norm_eps", 1e-6), pre_norm=True, activation=_hf_act(d.get("hidden_act", "silu"), source),
        gated_mlp=True, attention_bias=bool(d.get("attention_bias", False)), mlp_bias=bool(d.get("mlp_bias", False)),
        tie_word_embeddings=d.get("tie_word_embeddings", False), add_pooler=False, hidden_dropout=0.0,
        attention_dropout=d.get("attention_dropout", 0.0), initializer_range=d.get("initializer_range", 0.02),
        pad_token_id=d.get("pad_token_id"), bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"),
        extra=_extra(d, keys))


def _llama_to_hf(c: ModelConfig) -> dict[str, Any]:
    return {"vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
            "num_key_value_heads": c.kv_heads, "head_dim": c.head_size, "hidden_act": c.activation,
            "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.norm_eps,
            "rope_parameters": {"rope_theta": c.rope_theta, "rope_type": "default"},
            "rope_theta": c.rope_theta, "attention_bias": c.attention_bias, "mlp_bias": c.mlp_bias,
            "attention_dropout": c.attention_dropout, "tie_word_embeddings": c.tie_word_embeddings,
            "initializer_range": c.initializer_range, "pad_token_id": c.pad_token_id,
            "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id}


_FROM_HF = {"bert": _bert_from_hf, "gpt2": _gpt2_from_hf, "llama": _llama_from_hf}
_TO_HF = {"bert": _bert_to_hf, "gpt2": _gpt2_to_hf, "llama": _llama_to_hf}


# ---- named presets --------------------------------------------------------------------------
def _bert(layers: int, hidden: int) -> ModelConfig:
    # Turc et al. 2019 ("Well-Read Students Learn Better"): heads = H/64, feed-forward 4H.
    return ModelConfig(model_type="bert", num_layers=layers, hidden_size=hidden, num_heads=hidden // 64,
                       intermediate_size=4 * hidden)


PRESETS: dict[str, ModelConfig] = {
    "bert-tiny": _bert(2, 128),
    "bert-mini": _bert(4, 256),
    "bert-small": _bert(4, 512),
    "bert-medium": _bert(8, 512),
    "bert-base": _bert(12, 768),
    # all-MiniLM-L6-v2 (the `minilm` asset): 6 layers, 384 wide, 12 heads of 32.
    "minilm": ModelConfig(model_type="bert", num_layers=6, hidden_size=384, num_heads=12, intermediate_size=1536),
    # minGPT's "gpt-mini" (Karpathy): 6 layers, 6 heads, 192 wide, GPT-2's BPE vocabulary.
    "gpt-mini": ModelConfig(model_type="gpt2", vocab_size=50257, hidden_size=192, num_layers=6, num_heads=6,
                            intermediate_size=768, max_position_embeddings=1024, type_vocab_size=0,
                            norm_eps=1e-5, pre_norm=True, activation="gelu_tanh", add_pooler=False,
                            pad_token_id=None, bos_token_id=50256, eos_token_id=50256),
    # SmolLM2-135M(-Instruct) (the `smollm2` asset): Llama, 30 layers, 576 wide, 9 heads / 3 KV heads.
    "smollm2": ModelConfig(model_type="llama", vocab_size=49152, hidden_size=576, num_layers=30, num_heads=9,
                           num_kv_heads=3, intermediate_size=1536, max_position_embeddings=8192,
                           type_vocab_size=0, position_embedding="rotary", rope_theta=100000.0,
                           norm="rmsnorm", norm_eps=1e-5, pre_norm=True, activation="silu", gated_mlp=True,
                           attention_bias=False, mlp_bias=False, tie_word_embeddings=True, add_pooler=False,
                           hidden_dropout=0.0, attention_dropout=0.0, pad_token_id=2, bos_token_id=1,
                           eos_token_id=2),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """A named shape, optionally with fields changed: `preset("bert-tiny", vocab_size=1000)`."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
    base = PRESETS[name]
    return dataclasses.replace(base, **{"extra": dict(base.extra), **overrides})  # never share `extra`
