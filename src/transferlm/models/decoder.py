"""`Decoder`: causal language models: GPT-2 (Radford et al. 2019), Llama (Touvron et al. 2023),
and BERT-shaped decoders with cross-attention (the decoder half of seq2seq.py).

    x_0 = embed(tokens) (+ learned positions)          # Llama: rotary positions inside attention
    x_l = Block(x_{l-1})   causal self-attention (+ cross-attention to the encoder output)
    logits = lm_head(final_norm(x_L))                   # tied to embed unless the config says not

Incremental decoding keeps keys/values in a `KVCache`; `generate` does greedy decoding or
sampling with temperature, top-k and top-p (nucleus, Holtzman et al. 2020), and stops on stop
tokens; `stream` yields the same tokens one step at a time. Left-padded batches work: positions
count real tokens only (cumsum of the mask). `DecodeBatch` is continuous batching: sequences
prefilled one by one join a running batch (their caches left-padded to a common length) and leave
it when done, each decode step one forward pass over every row (serving/ uses it).

What this file does not do: tokenise (tokenization/), beam search (seq2seq.py has it for
encoder-decoders), losses (objectives/pretraining.py has the CLM loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from . import checkpoint
from .config import ModelConfig
from .layers import (Block, Embeddings, KVCache, LMHead, ModelOutput, Rotary, build_attention_mask, init_weights,
                     make_norm)


class Decoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not config.causal:
            raise ValueError("Decoder needs a causal config: model_type 'gpt2' or 'llama', or 'bert' with "
                             "is_decoder=True")
        self.config = config
        self.embeddings = Embeddings(config)
        self.rotary = Rotary(config.head_size, config.rope_theta) if config.position_embedding == "rotary" else None
        self.layers = nn.ModuleList(Block(config, cross=config.add_cross_attention) for _ in range(config.num_layers))
        self.final_norm = make_norm(config) if config.pre_norm else None  # pre-LN needs a last norm
        self.lm_head = LMHead(config)
        init_weights(self, config.initializer_range)
        if config.pre_norm:  # GPT-2 (Radford et al. 2019, sec. 2.3): residual projections scaled by 1/sqrt(2L)
            for block in self.layers:
                out_proj = block.mlp.down_proj if config.gated_mlp else block.mlp.fc_out
                for lin in (block.attn.o_proj, out_proj):
                    nn.init.normal_(lin.weight, std=config.initializer_range / math.sqrt(2 * config.num_layers))
        if config.tie_word_embeddings:
            self.lm_head.decoder.weight = self.embeddings.word_embeddings.weight

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                past_key_values: KVCache | None = None, use_cache: bool = False,
                output_hidden_states: bool = False, position_ids: Tensor | None = None,
                token_type_ids: Tensor | None = None, encoder_hidden_states: Tensor | None = None,
                encoder_attention_mask: Tensor | None = None, logits_to_keep: int = 0) -> ModelOutput:
        """input_ids (B, T) new tokens; attention_mask (B, past + T) covers the cached ones too.

        logits_to_keep: compute logits for the last n positions only (0 = all); generation needs
        only the last, and the vocabulary projection is the largest matmul of a small model.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        past = past_key_values.seq_length() if past_key_values is not None else 0
        S = past + T
        cache = past_key_values if past_key_values is not None else (KVCache() if use_cache else None)
        if attention_mask is not None and tuple(attention_mask.shape) != (B, S):
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)}, expected {(B, S)} "
                             f"({past} cached + {T} new positions)")
        if position_ids is None:
            if attention_mask is not None:  # count real tokens only, so left padding shifts nothing
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]  # (B, T)
            else:
                position_ids = torch.arange(past, S, device=input_ids.device).expand(B, T)  # (B, T)
        mask, is_causal = build_attention_mask(attention_mask, T, S, causal=True, device=input_ids.device)
        memory_mask = None
        if encoder_attention_mask is not None and not bool(encoder_attention_mask.all()):
            memory_mask = encoder_attention_mask.bool()[:, None, None, :]  # (B, 1, 1, S_enc)
        x = self.embeddings(input_ids, position_ids, token_type_ids)  # (B, T, C)
        rotary = self.rotary(position_ids, x.dtype) if self.rotary is not None else None
        hidden = [x] if output_hidden_states else None
        for i, block in enumerate(self.layers):
            x = block(x, mask, is_causal, rotary, cache, i, encoder_hidden_states, memory_mask)
            if hidden is not None:
                hidden.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
            if hidden is not None:
                hidden[-1] = x  # as Hugging Face: the last entry is after the final norm
        logits = self.lm_head(x[:, -logits_to_keep:] if logits_to_keep else x)  # (B, T or n, V)
        return ModelOutput(last_hidden_state=x, hidden_states=tuple(hidden) if hidden is not None else None,
                           logits=logits, past_key_values=cache)

    @torch.no_grad()
    def generate(self, input_ids: Tensor, max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, stop_token_ids: Sequence[int] = (),
                 attention_mask: Tensor | None = None, generator: torch.Generator | None = None,
                 pad_token_id: int | None = None, on_token: Callable[[Tensor], None] | None = None) -> Tensor:
        """Prompt (B, T) -> prompt + up to max_new_tokens new tokens (B, T + n), with a KV cache.

        on_token: called with each step's new tokens (B,) as they are chosen (streaming output).

        A row that produced a stop token is filled with `pad_token_id` (default: the config's,
        else the first stop token) until every row has stopped or n reaches max_new_tokens.
        For batched prompts of different lengths, left-pad them and pass attention_mask.
        """
        new = []
        for nxt in self.stream(input_ids, max_new_tokens, do_sample, temperature, top_k, top_p, stop_token_ids,
                               attention_mask, generator, pad_token_id):
            new.append(nxt[:, None])
            if on_token is not None:
                on_token(nxt)
        return torch.cat([input_ids, *new], dim=1)  # (B, T + n)

    @torch.no_grad()
    def stream(self, input_ids: Tensor, max_new_tokens: int, do_sample: bool = False, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None, stop_token_ids: Sequence[int] = (),
               attention_mask: Tensor | None = None, generator: torch.Generator | None = None,
               pad_token_id: int | None = None) -> Iterator[Tensor]:
        """`generate` one step at a time: yields each step's new tokens (B,) as soon as they are
        chosen (a streamed completion; serving/ sends them as server-sent events)."""
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        check_sampling(temperature, top_k, top_p)
        was_training = self.training
        self.eval()
        B = input_ids.shape[0]
        stops = torch.tensor(list(stop_token_ids), dtype=torch.long, device=input_ids.device)
        if pad_token_id is None:
            pad_token_id = self.config.pad_token_id if self.config.pad_token_id is not None else (
                int(stops[0]) if len(stops) else 0)
        done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        mask, cache = attention_mask, KVCache()
        step_input = input_ids
        try:
            for step in range(max_new_tokens):
                out = self(step_input, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
                nxt = next_token(out.logits[:, -1], do_sample, temperature, top_k, top_p, generator)  # (B,)
                nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
                done |= torch.isin(nxt, stops)
                yield nxt
                if bool(done.all()):
                    break
                step_input = nxt[:, None]
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)
        finally:
            self.train(was_training)

    # ---- checkpoints ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> Decoder:
        """A Hugging Face folder (GPT2LMHeadModel, LlamaForCausalLM, BertLMHeadModel) or a GGUF file."""
        return checkpoint.load_model(path, Decoder, dtype=dtype)

    def save_pretrained(self, folder: str | Path, architectures: list[str] | None = None) -> Path:
        """Write a folder that transformers' AutoModelForCausalLM loads."""
        return checkpoint.save_model(self, folder, architectures=architectures)


class DecodeBatch:
    """Continuous batching: sequences decoded together, one new token per row per step.

    Iteration-level scheduling (Yu et al. 2022, "Orca", sec. 3.2; text-generation-inference's
    continuous batching): a sequence joins at a step boundary after its own prefill and leaves as
    soon as it is done, so the batch is never held back by its longest member.

        logits, cache = batch.prefill(ids)    # (V,), the prompt's cache: what `stream`'s first step computes
        batch.join(cache)                      # row len(batch) - 1
        logits = batch.step(tokens)            # tokens (B,): each row's newest token -> logits (B, V)
        batch.leave([2])                       # drop rows; the others keep their order

    The rows share one KV cache, left-padded: per layer keys / values (B, KV, S, hs) with each row's
    real positions at the right end, and a padding mask (B, S), 1 = real. `forward` counts positions
    from the mask, so a row's new token gets the position it has alone, and padded keys get no
    attention weight. A join pads the shorter side on the left; a leave drops leading columns that
    are padding in every remaining row. Greedy tokens equal `stream`'s for each sequence alone (up
    to float rounding of batched matmuls, far below the gaps between top logits in practice).
    """

    def __init__(self, model: Decoder) -> None:
        self.model = model
        self.cache: KVCache | None = None
        self.mask: Tensor | None = None  # (B, S) long

    def __len__(self) -> int:
        return 0 if self.mask is None else self.mask.shape[0]

    @property
    def width(self) -> int:
        """S: cached positions per row, padding included."""
        return 0 if self.mask is None else self.mask.shape[1]

    @torch.no_grad()
    def prefill(self, ids: Sequence[int]) -> tuple[Tensor, KVCache]:
        """One prompt alone (no padding): its last position's logits (V,) and its cache (1 row)."""
        dev = next(self.model.parameters()).device
        cache = KVCache()
        out = self.model(torch.tensor([list(ids)], dtype=torch.long, device=dev), past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        return out.logits[0, -1], cache

    def join(self, cache: KVCache) -> int:
        """Add a prefilled sequence (a one-row cache of its tokens so far) as the last row; its index."""
        if cache.cross:
            raise ValueError("DecodeBatch: cross-attention caches (encoder-decoder) are not batched")
        T = cache.seq_length()
        mask = torch.ones(1, T, dtype=torch.long, device=cache.keys[0].device)  # (1, T)
        if self.cache is None or self.mask is None:
            self.cache, self.mask = _copy(cache), mask
            return 0
        S = self.width
        new = _left_pad(cache, S - T) if T < S else _copy(cache)
        if T > S:
            self.cache = _left_pad(self.cache, T - S)
            self.mask = F.pad(self.mask, (T - S, 0))  # (B, T)
        elif T < S:
            mask = F.pad(mask, (S - T, 0))  # (1, S)
        self.cache.keys = [torch.cat([a, b], dim=0) for a, b in zip(self.cache.keys, new.keys)]  # (B + 1, KV, S', hs)
        self.cache.values = [torch.cat([a, b], dim=0) for a, b in zip(self.cache.values, new.values)]
        self.mask = torch.cat([self.mask, mask], dim=0)  # (B + 1, S')
        return len(self) - 1

    @torch.no_grad()
    def step(self, tokens: Tensor) -> Tensor:
        """Feed each row's newest token (B,); the logits of the token after it (B, V)."""
        if self.cache is None or self.mask is None:
            raise RuntimeError("DecodeBatch.step: no rows (join a prefilled sequence first)")
        B = len(self)
        if tuple(tokens.shape) != (B,):
            raise ValueError(f"DecodeBatch.step: {tuple(tokens.shape)} tokens for {B} rows")
        mask = torch.cat([self.mask, self.mask.new_ones(B, 1)], dim=1)  # (B, S + 1)
        out = self.model(tokens[:, None], attention_mask=mask, past_key_values=self.cache, use_cache=True,
                         logits_to_keep=1)  # tokens (B, 1)
        self.mask = mask
        return out.logits[:, -1]  # (B, V)

    def leave(self, rows: Sequence[int]) -> None:
        """Drop `rows`; the others keep their relative order (row indices shift down)."""
        if self.cache is None or self.mask is None or not rows:
            return
        keep = [i for i in range(len(self)) if i not in set(rows)]
        if not keep:
            self.cache = self.mask = None
            return
        idx = torch.tensor(keep, device=self.mask.device)
        mask = self.mask.index_select(0, idx)  # (B', S)
        first = int(mask.any(0).long().argmax())  # leading columns that are padding in every row
        self.mask = mask[:, first:]  # (B', S - first)
        self.cache.keys = [k.index_select(0, idx)[:, :, first:] for k in self.cache.keys]  # (B', KV, S - first, hs)
        self.cache.values = [v.index_select(0, idx)[:, :, first:] for v in self.cache.values]


def _copy(cache: KVCache) -> KVCache:
    out = KVCache()
    out.keys, out.values = list(cache.keys), list(cache.values)
    return out


def _left_pad(cache: KVCache, n: int) -> KVCache:
    """The cache with n zero positions before its first (masked out by the batch's padding mask)."""
    out = KVCache()
    out.keys = [F.pad(k, (0, 0, n, 0)) for k in cache.keys]  # (B, KV, S, hs) -> (B, KV, n + S, hs)
    out.values = [F.pad(v, (0, 0, n, 0)) for v in cache.values]
    return out


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def next_token(logits: Tensor, do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """logits (B, V) -> next token ids (B,). Greedy unless do_sample (and temperature > 0).

    Sampling: divide by temperature, keep the top_k largest, then keep the smallest set of
    tokens whose probability reaches top_p (nucleus sampling, Holtzman et al. 2020, sec. 3.1).
    """
    if not do_sample or temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(-1)
        before = probs.cumsum(-1) - probs  # probability mass strictly above each token
        drop_sorted = before >= top_p  # the first token has before = 0 and is always kept
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
