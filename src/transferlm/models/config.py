"""`ModelConfig`: the one shape description every Transformer in `models/` is built from.

One flat dataclass covers the three families we build (BERT encoders and BERT decoders,
GPT-2 and Llama decoders): the family only changes a handful of switches (post-LN or pre-LN,
LayerNorm or RMSNorm, GELU or SwiGLU, learned or rotary positions). Named presets give the
shapes used in the toolkit; `from_hf_dict` / `to_hf_dict` translate Hugging Face `config.json`
dictionaries through the registered family of their `model_type` (families/bert.py, gpt2.py,
llama.py hold each family's mapping; this file holds only the shared helpers `hf_extra` and
`hf_activation`). A `model_type` is checked against the registry when it is used (a model
built, a config.json read or written), not when a ModelConfig is made.

What this file does not do: read or write files (checkpoint.py does), build modules, or know
anything about training (dropout rates are here because they are part of the architecture's
published definition, not because the model decides how it is trained).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .registry import family

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
        if not isinstance(self.model_type, str) or not self.model_type:
            raise ValueError(f"model_type must be a family name such as 'bert', got {self.model_type!r}")
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
        return family(self.model_type).causal or self.is_decoder

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **{"extra": dict(self.extra), **changes})

    # ---- Hugging Face config.json ---------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Build from a Hugging Face config dict; `source` names the file in error messages."""
        mt = d.get("model_type")
        fam = family(mt, source)
        try:
            return fam.from_hf(d, source)
        except KeyError as e:
            raise ValueError(f"{source}: {mt} config is missing the key {e.args[0]!r}") from None

    def to_hf_dict(self, architectures: list[str] | None = None) -> dict[str, Any]:
        """The config.json dict that transformers' Auto classes read back to the same shapes."""
        fam = family(self.model_type)
        d = fam.to_hf(self)
        out: dict[str, Any] = {"architectures": list(architectures or [fam.architectures[0].name]),
                               "model_type": self.model_type}
        out.update({k: v for k, v in self.extra.items() if k not in d})
        out.update(d)
        return out


# Keys that are bookkeeping in HF configs, not shapes; never carried in `extra`.
_IGNORED = {"architectures", "model_type", "transformers_version", "_name_or_path", "torch_dtype",
            "dtype", "use_cache", "gradient_checkpointing"}


def hf_extra(d: dict[str, Any], used: set[str]) -> dict[str, Any]:
    """The keys of a config.json dict that a family's `from_hf` did not read (kept in `extra`)."""
    return {k: v for k, v in d.items() if k not in used and k not in _IGNORED}


def hf_activation(name: str, source: str) -> str:
    """An HF activation name (hidden_act / activation_function) -> ours."""
    acts = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
            "gelu_fast": "gelu_tanh", "silu": "silu", "swish": "silu", "relu": "relu"}
    if name not in acts:
        raise ValueError(f"{source}: unsupported activation {name!r}; expected one of {sorted(acts)}")
    return acts[name]


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
