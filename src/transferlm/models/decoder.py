"""`Decoder`: causal language models: GPT-2 (Radford et al. 2019), Llama (Touvron et al. 2023),
and BERT-shaped decoders with cross-attention (the decoder half of seq2seq.py).

    x_0 = embed(tokens) (+ learned positions)          # Llama: rotary positions inside attention
    x_l = Block(x_{l-1})   causal self-attention (+ cross-attention to the encoder output)
    logits = lm_head(final_norm(x_L))                   # tied to embed unless the config says not

Incremental decoding keeps keys/values in a `KVCache`; `generate` does greedy decoding or
sampling with temperature, top-k and top-p (nucleus, Holtzman et al. 2020), and stops on stop
tokens. Left-padded batches work: positions count real tokens only (cumsum of the mask).

What this file does not do: tokenise (tokenization/), beam search (seq2seq.py has it for
encoder-decoders), losses (objectives/pretraining.py has the CLM loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

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
                 pad_token_id: int | None = None) -> Tensor:
        """Prompt (B, T) -> prompt + up to max_new_tokens new tokens (B, T + n), with a KV cache.

        A row that produced a stop token is filled with `pad_token_id` (default: the config's,
        else the first stop token) until every row has stopped or n reaches max_new_tokens.
        For batched prompts of different lengths, left-pad them and pass attention_mask.
        """
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
        seq, mask, cache = input_ids, attention_mask, KVCache()
        step_input = input_ids
        try:
            for step in range(max_new_tokens):
                out = self(step_input, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=1)
                nxt = next_token(out.logits[:, -1], do_sample, temperature, top_k, top_p, generator)  # (B,)
                nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
                seq = torch.cat([seq, nxt[:, None]], dim=1)
                done |= torch.isin(nxt, stops)
                if bool(done.all()):
                    break
                step_input = nxt[:, None]
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones(B, 1)], dim=1)
        finally:
            self.train(was_training)
        return seq

    # ---- checkpoints ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> Decoder:
        """A Hugging Face folder (GPT2LMHeadModel, LlamaForCausalLM, BertLMHeadModel) or a GGUF file."""
        return checkpoint.load_model(path, Decoder, dtype=dtype)

    def save_pretrained(self, folder: str | Path, architectures: list[str] | None = None) -> Path:
        """Write a folder that transformers' AutoModelForCausalLM loads."""
        return checkpoint.save_model(self, folder, architectures=architectures)


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
