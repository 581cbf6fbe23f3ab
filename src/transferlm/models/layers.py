"""The Transformer's parts, each once: norms, positions, attention, feed-forward, blocks, KV cache.

Notation (shape comments): B batch, T time (queries), S time (keys), C channels, H query heads,
KV key/value heads, hs head size, V vocabulary.

Attention goes through `torch.nn.functional.scaled_dot_product_attention` (SDPA), so PyTorch
picks its fused kernel; we pass no mask at all when none is needed (an encoder batch without
padding, a causal prefill without padding uses `is_causal=True`, one new token with a cache),
because a mask forces a slower kernel on some back ends. One exception: bidirectional training on
CPU with attention dropout, where SDPA can only run its unfused math kernel anyway; there
`_dropout_attention` does the same arithmetic with less bookkeeping (see its docstring).

What this file does not do: know about checkpoints or Hugging Face names (checkpoint.py maps
them), tasks or losses, or which family a model belongs to beyond the switches in ModelConfig.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig


# ---- norms ------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019): x / rms(x) * g, no centring, no bias."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float()  # the statistic in fp32 even for half-precision activations, as Llama does
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def make_norm(config: ModelConfig, dim: int | None = None) -> nn.Module:
    dim = dim or config.hidden_size
    if config.norm == "rmsnorm":
        return RMSNorm(dim, config.norm_eps)
    return nn.LayerNorm(dim, eps=config.norm_eps)


def activation(name: str, x: Tensor) -> Tensor:
    if name == "gelu":
        return F.gelu(x)  # exact: x * Phi(x) (Hendrycks & Gimpel 2016), BERT
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")  # GPT-2's tanh approximation of GELU
    if name == "silu":
        return F.silu(x)  # x * sigmoid(x), the "Swish" of SwiGLU
    if name == "relu":
        return F.relu(x)
    raise ValueError(f"unknown activation {name!r}")


# ---- dropout ------------------------------------------------------------------------------------
class _CPUDropout(torch.autograd.Function):
    """Inverted dropout (Srivastava et al. 2014) with the keep mask from `rand >= p`.

    The same distribution as F.dropout (keep with probability 1 - p, scale by 1 / (1 - p)), but on
    CPU F.dropout draws with bernoulli_, then divides, then multiplies; here one uniform draw is
    turned into the scaled mask in place: about 35-40% less time for forward + backward, and
    dropout is the largest non-matmul cost of a BERT-mini training step on CPU.
    """

    @staticmethod
    def forward(ctx, x: Tensor, p: float) -> Tensor:
        if x.dtype in (torch.float32, torch.float64):
            noise = torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))  # 0 or 1/(1-p), same shape as x
        else:  # bf16 / fp16: draw in fp32 (a bf16 uniform has only 256 levels: p would be off by ~0.4%)
            noise = torch.rand_like(x, dtype=torch.float32).ge_(p).to(x.dtype).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(noise)
        return x * noise

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (noise,) = ctx.saved_tensors
        return grad * noise, None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """F.dropout, with the faster mask of `_CPUDropout` for CPU tensors."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    return _CPUDropout.apply(x, p)


class Dropout(nn.Dropout):
    """nn.Dropout (same name, same state) computing with `dropout` above."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)


# ---- positions ----------------------------------------------------------------------------------
def sinusoidal_table(n_positions: int, dim: int) -> Tensor:
    """Vaswani et al. 2017 sec. 3.5: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(...)."""
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inv = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (d/2,)
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv[: dim // 2])
    return table


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021, RoFormer eq. 34) in Llama's "half" layout.

    Channel i of the first half pairs with channel i + hs/2 (rotate_half), which is the layout of
    the Hugging Face Llama checkpoints; GGUF files store Q and K permuted for the interleaved
    layout, and checkpoint.py undoes that permutation on load.
    """

    def __init__(self, head_size: int, theta: float) -> None:
        super().__init__()
        self.head_size, self.theta = head_size, theta

    def forward(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """positions (B, T) -> cos, sin of shape (B, T, hs).

        The frequencies are made here in fp32 each call (hs/2 numbers), not kept as a buffer that
        `model.to(torch.bfloat16)` would round; the angles too are fp32, as in HF Llama."""
        hs = self.head_size
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, hs, 2, dtype=torch.float32, device=positions.device) / hs))
        freqs = positions.float()[..., None] * inv_freq  # (B, T, hs/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, hs)
        return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, H, T, hs); cos, sin (B, T, hs)."""
    cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, hs)
    return x * cos + _rotate_half(x) * sin


class Embeddings(nn.Module):
    """Token (+ learned or sinusoidal position) (+ token type) embeddings, (+ LayerNorm), dropout.

    Rotary models add no position vector here (the rotation happens inside attention). Post-LN
    models (BERT) normalise the embedding sum (Devlin et al. 2019, sec. 3 / HF BertEmbeddings).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, C)
        self.position_embeddings: nn.Embedding | None = None
        if config.position_embedding == "learned":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, C)
        elif config.position_embedding == "sinusoidal":
            self.register_buffer("sinusoid", sinusoidal_table(config.max_position_embeddings, C), persistent=False)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, C) if config.type_vocab_size else None
        self.norm = None if config.pre_norm else make_norm(config)
        self.dropout = Dropout(config.hidden_dropout)
        self.kind = config.position_embedding
        self.max_positions = config.max_position_embeddings

    def forward(self, input_ids: Tensor, positions: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        x = self.word_embeddings(input_ids)  # (B, T, C)
        if self.kind != "rotary":
            if int(positions.max()) >= self.max_positions:
                raise ValueError(f"sequence needs position {int(positions.max())} but the model has only "
                                 f"{self.max_positions} positions (max_position_embeddings)")
            if self.position_embeddings is not None:
                x = x + self.position_embeddings(positions)
            else:
                x = x + self.sinusoid[positions]
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.token_type_embeddings(token_type_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x)


# ---- masks and cache ----------------------------------------------------------------------------
def build_attention_mask(padding_mask: Tensor | None, q_len: int, k_len: int, causal: bool,
                         device: torch.device | None = None) -> tuple[Tensor | None, bool]:
    """The SDPA mask for queries that are the LAST `q_len` of `k_len` keys, and the is_causal flag.

    padding_mask: (B, S) with 1 for real tokens (S = k_len = past + q_len), or None (no padding).
    Returns (mask, is_causal): mask is None or bool (B or 1, 1, T, S) with True = may attend.
    No mask at all where none is needed, so SDPA keeps its fastest kernel.
    """
    if padding_mask is not None:
        if padding_mask.shape[-1] != k_len:
            raise ValueError(f"attention_mask covers {padding_mask.shape[-1]} positions, expected {k_len} "
                             "(past + new tokens)")
        if bool(padding_mask.all()):
            padding_mask = None  # nothing padded: mask-free fast path
    if padding_mask is None:
        if not causal or q_len == 1:
            return None, False  # an encoder without padding; one new token sees every cached key
        if q_len == k_len:
            return None, True  # a prefill without cache: SDPA's built-in causal mask
        return causal_mask(q_len, k_len, device or torch.device("cpu"))[None, None], False  # (1, 1, T, S)
    keep = padding_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
    if not causal:  # a row with no real token at all attends everywhere instead of giving NaN
        return keep | ~keep.any(-1, keepdim=True), False
    mask = keep & causal_mask(q_len, k_len, padding_mask.device)  # (B, 1, T, S)
    # A query that sees no key at all (a left-padding position) would give NaN in softmax; let it
    # see everything instead. Its output is padding and is never read.
    return mask | ~mask.any(-1, keepdim=True), False


def causal_mask(q_len: int, k_len: int, device: torch.device) -> Tensor:
    """bool (T, S): query i (at absolute position S - T + i) sees keys 0 .. S - T + i."""
    past = k_len - q_len
    return torch.arange(k_len, device=device)[None, :] <= torch.arange(past, k_len, device=device)[:, None]


class KVCache:
    """Keys and values of past positions, per layer, for incremental decoding.

    Self-attention entries grow by concatenation along time; cross-attention keys/values are
    computed from the encoder output once and kept. `reorder` follows beam search's choices.
    """

    def __init__(self) -> None:
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []
        self.cross: dict[int, tuple[Tensor, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def seq_length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append k, v (B, KV, T, hs) for `layer`; return all keys/values so far (B, KV, S, hs)."""
        if layer == len(self.keys):
            self.keys.append(k)
            self.values.append(v)
        elif layer < len(self.keys):
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        else:
            raise IndexError(f"KV cache: layer {layer} updated before layer {len(self.keys)}")
        return self.keys[layer], self.values[layer]

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows `index` (beam search: each beam continues some earlier beam)."""
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]
        self.cross = {i: (k.index_select(0, index), v.index_select(0, index)) for i, (k, v) in self.cross.items()}


# ---- attention ------------------------------------------------------------------------------------
# SDPA's enable_gqa (PyTorch >= 2.5) lets K/V heads serve groups of query heads without copying them.
_SDPA_GQA = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 5)

class Attention(nn.Module):
    """Multi-head (Vaswani et al. 2017, sec. 3.2.2) or grouped-query attention, with W^O.

    Self-attention projects Q, K and V with one fused matrix `qkv_proj` (one matmul instead of
    three); cross-attention takes queries from x and keys/values from the encoder output
    (`q_proj`, `kv_proj`).
    """

    def __init__(self, config: ModelConfig, cross: bool = False) -> None:
        super().__init__()
        C, H, KV, hs = config.hidden_size, config.num_heads, config.kv_heads, config.head_size
        self.H, self.KV, self.hs, self.cross = H, KV, hs, cross
        bias = config.attention_bias
        if cross:
            self.q_proj = nn.Linear(C, H * hs, bias=bias)
            self.kv_proj = nn.Linear(C, 2 * KV * hs, bias=bias)
        else:
            self.qkv_proj = nn.Linear(C, (H + 2 * KV) * hs, bias=bias)
        self.o_proj = nn.Linear(H * hs, C, bias=bias)
        self.dropout = config.attention_dropout

    def forward(self, x: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                rotary: tuple[Tensor, Tensor] | None = None, cache: KVCache | None = None, layer: int = 0,
                memory: Tensor | None = None) -> Tensor:
        B, T, _ = x.shape
        H, KV, hs = self.H, self.KV, self.hs
        if not self.cross:
            q, k, v = self.qkv_proj(x).split([H * hs, KV * hs, KV * hs], dim=-1)
            q = q.view(B, T, H, hs).transpose(1, 2)  # (B, H, T, hs)
            k = k.view(B, T, KV, hs).transpose(1, 2)  # (B, KV, T, hs)
            v = v.view(B, T, KV, hs).transpose(1, 2)  # (B, KV, T, hs)
            if rotary is not None:
                q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
            if cache is not None:
                k, v = cache.update(layer, k, v)  # (B, KV, S, hs)
        else:
            q = self.q_proj(x).view(B, T, H, hs).transpose(1, 2)  # (B, H, T, hs)
            if cache is not None and layer in cache.cross:
                k, v = cache.cross[layer]
            else:
                if memory is None:
                    raise ValueError("cross-attention needs the encoder output (encoder_hidden_states)")
                S = memory.shape[1]
                k, v = self.kv_proj(memory).view(B, S, 2, KV, hs).permute(2, 0, 3, 1, 4)  # (2, B, KV, S, hs)
                if cache is not None:
                    cache.cross[layer] = (k, v)
        gqa = {}
        if KV != H:  # grouped-query attention: each K/V head serves H/KV query heads (Ainslie et al. 2023)
            if _SDPA_GQA:
                gqa = {"enable_gqa": True}  # SDPA broadcasts the K/V heads itself: no copies
            else:
                k = k.repeat_interleave(H // KV, dim=1)  # (B, H, S, hs)
                v = v.repeat_interleave(H // KV, dim=1)
        dropout = self.dropout if self.training else 0.0
        if dropout > 0.0 and q.device.type == "cpu" and not gqa and not is_causal and cache is None:
            y = _dropout_attention(q, k, v, mask, dropout)  # (B, H, T, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                               dropout_p=dropout, **gqa)  # (B, H, T, hs)
        y = y.transpose(1, 2).reshape(B, T, H * hs)  # (B, T, H*hs)
        return self.o_proj(y)


def _dropout_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float) -> Tensor:
    """softmax(q k^T / sqrt(hs) + mask) with dropout on the probabilities, times v (training on CPU).

    The same arithmetic as SDPA's math kernel, which is what SDPA runs on CPU whenever dropout is on
    (its fused CPU kernel has no dropout). Done here, the 1/sqrt(hs) scale rides in the GEMM (one
    baddbmm instead of scaling q and k), the padding mask is one additive bias, and the
    "safe softmax" bookkeeping for rows with no visible key (isneginf / where / all over the (T, S)
    scores) is skipped: build_attention_mask never leaves a row without a visible key.
    q (B, H, T, hs); k, v (B, H, S, hs); mask None or bool (B or 1, 1, T or 1, S), True = attend.
    """
    B, H, T, hs = q.shape
    S = k.shape[2]
    q3 = q.reshape(B * H, T, hs)  # (B*H, T, hs)
    k3 = k.reshape(B * H, S, hs)  # (B*H, S, hs)
    v3 = v.reshape(B * H, S, hs)  # (B*H, S, hs)
    scores = torch.baddbmm(q3.new_empty(()).expand(B * H, T, S), q3, k3.transpose(1, 2),
                           beta=0.0, alpha=1.0 / math.sqrt(hs))  # (B*H, T, S)
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device).masked_fill_(~mask, float("-inf"))
        scores = (scores.view(B, H, T, S) + bias).view(B * H, T, S)  # (B, H, T, S) -> (B*H, T, S)
    probs = dropout(torch.softmax(scores, dim=-1), p, training=True)  # (B*H, T, S)
    return torch.bmm(probs, v3).view(B, H, T, hs)  # (B, H, T, hs)


# ---- feed-forward ---------------------------------------------------------------------------------
class MLP(nn.Module):
    """Position-wise feed-forward (Vaswani et al. 2017, sec. 3.3): fc_out(act(fc_in x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.act = config.activation

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_out(activation(self.act, self.fc_in(x)))


class GatedMLP(nn.Module):
    """SwiGLU (Shazeer 2020, eq. 6): down(silu(gate x) * up x), as in Llama."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        C, I, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = nn.Linear(C, I, bias=bias)
        self.up_proj = nn.Linear(C, I, bias=bias)
        self.down_proj = nn.Linear(I, C, bias=bias)
        self.act = config.activation

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(activation(self.act, self.gate_proj(x)) * self.up_proj(x))


# ---- the block ------------------------------------------------------------------------------------
class Block(nn.Module):
    """Self-attention (+ cross-attention) + feed-forward, each with a residual and a norm.

    post-LN (Vaswani et al. 2017; BERT):  x = LN(x + f(x))
    pre-LN  (GPT-2, Llama; Xiong et al. 2020): x = x + f(LN(x))
    """

    def __init__(self, config: ModelConfig, cross: bool = False) -> None:
        super().__init__()
        self.pre_norm = config.pre_norm
        self.attn = Attention(config)
        self.attn_norm = make_norm(config)
        self.cross_attn = Attention(config, cross=True) if cross else None
        self.cross_norm = make_norm(config) if cross else None
        self.mlp = GatedMLP(config) if config.gated_mlp else MLP(config)
        self.mlp_norm = make_norm(config)
        self.dropout = Dropout(config.hidden_dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, is_causal: bool = False,
                rotary: tuple[Tensor, Tensor] | None = None, cache: KVCache | None = None, layer: int = 0,
                memory: Tensor | None = None, memory_mask: Tensor | None = None) -> Tensor:
        drop = self.dropout
        if self.pre_norm:
            x = x + drop(self.attn(self.attn_norm(x), mask, is_causal, rotary, cache, layer))
            if self.cross_attn is not None:
                x = x + drop(self.cross_attn(self.cross_norm(x), memory_mask, cache=cache, layer=layer, memory=memory))
            return x + drop(self.mlp(self.mlp_norm(x)))
        x = self.attn_norm(x + drop(self.attn(x, mask, is_causal, rotary, cache, layer)))
        if self.cross_attn is not None:
            x = self.cross_norm(x + drop(self.cross_attn(x, memory_mask, cache=cache, layer=layer, memory=memory)))
        return self.mlp_norm(x + drop(self.mlp(x)))


class LMHead(nn.Module):
    """Hidden states -> vocabulary logits.

    GPT-2 / Llama: one linear map (tied to the input embeddings unless the config says not).
    BERT (BertLMHeadModel / BertForMaskedLM): dense -> act -> LayerNorm -> linear + bias
    (Devlin et al. 2019, the "transform" of the MLM head).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.transform = config.model_type == "bert"
        if self.transform:
            self.dense = nn.Linear(C, C)
            self.norm = make_norm(config)
            self.act = config.activation
        self.decoder = nn.Linear(C, config.vocab_size, bias=self.transform)

    def forward(self, x: Tensor) -> Tensor:
        if self.transform:
            x = self.norm(activation(self.act, self.dense(x)))
        return self.decoder(x)


def init_weights(module: nn.Module, std: float) -> None:
    """N(0, std) for linear and embedding weights, zero biases, unit norms (BERT / GPT-2 init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, (nn.LayerNorm, RMSNorm)):
            nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


# ---- what models return ---------------------------------------------------------------------------
@dataclass
class ModelOutput:
    """What every model in this package returns (the contract in docs/ARCHITECTURE.md)."""

    last_hidden_state: Tensor  # (B, T, C)
    pooler_output: Tensor | None = None  # (B, C), BERT pooler tanh(W h_[CLS])
    hidden_states: tuple[Tensor, ...] | None = None  # L+1 entries (embeddings output first), like HF
    logits: Tensor | None = None  # decoders: (B, T, V)
    past_key_values: KVCache | None = None
    encoder_last_hidden_state: Tensor | None = None  # encoder-decoders: (B, S, C)
