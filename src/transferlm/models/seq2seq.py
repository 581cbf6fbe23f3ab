"""`Seq2Seq`: an encoder-decoder Transformer (Vaswani et al. 2017) from BERT-shaped halves.

    memory = Encoder(source)                                  # bidirectional, encoder.py
    logits = Decoder(target_in, cross-attending to memory)    # causal + cross-attention, decoder.py

This is the layout of Hugging Face's `EncoderDecoderModel` with a BERT encoder and a BERT decoder
(BertLMHeadModel with add_cross_attention; Rothe et al. 2020, "Leveraging Pre-trained Checkpoints
for Sequence Generation Tasks"), so such folders load here and ours load there. `forward` is
teacher-forced (the caller shifts the targets right and starts them with decoder_start_token_id);
`generate` decodes greedily or with beam search.

What this file does not do: losses (objectives/), shifting labels, or tokenising.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from . import checkpoint
from .checkpoint import CheckpointError
from .config import ModelConfig
from .decoder import Decoder
from .encoder import Encoder
from .layers import KVCache, ModelOutput
from .registry import families, family, names


class Seq2Seq(nn.Module):
    def __init__(self, encoder_config: ModelConfig, decoder_config: ModelConfig,
                 decoder_start_token_id: int | None = None, pad_token_id: int | None = None) -> None:
        super().__init__()
        if encoder_config.hidden_size != decoder_config.hidden_size:
            raise ValueError(f"encoder hidden_size {encoder_config.hidden_size} != decoder hidden_size "
                             f"{decoder_config.hidden_size}: cross-attention needs equal widths")
        self.encoder = Encoder(encoder_config.replace(is_decoder=False, add_cross_attention=False))
        self.decoder = Decoder(decoder_config.replace(is_decoder=True, add_cross_attention=True))
        # The token each target sequence starts with ([CLS] for BERT2BERT, Rothe et al. 2020).
        self.decoder_start_token_id = decoder_start_token_id
        self.pad_token_id = pad_token_id if pad_token_id is not None else decoder_config.pad_token_id

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               token_type_ids: Tensor | None = None) -> Tensor:
        return self.encoder(input_ids, attention_mask, token_type_ids).last_hidden_state  # (B, S, C)

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                decoder_input_ids: Tensor | None = None, decoder_attention_mask: Tensor | None = None,
                encoder_hidden_states: Tensor | None = None, past_key_values: KVCache | None = None,
                use_cache: bool = False, output_hidden_states: bool = False) -> ModelOutput:
        """Teacher-forced: logits (B, T, V) for every decoder position. Pass `encoder_hidden_states`
        to reuse an encoding (then input_ids may be None; attention_mask still masks its padding)."""
        if decoder_input_ids is None:
            raise ValueError("Seq2Seq.forward needs decoder_input_ids (targets shifted right)")
        if encoder_hidden_states is None:
            if input_ids is None:
                raise ValueError("Seq2Seq.forward needs input_ids or encoder_hidden_states")
            encoder_hidden_states = self.encode(input_ids, attention_mask)
        out = self.decoder(decoder_input_ids, attention_mask=decoder_attention_mask, past_key_values=past_key_values,
                           use_cache=use_cache, output_hidden_states=output_hidden_states,
                           encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=attention_mask)
        out.encoder_last_hidden_state = encoder_hidden_states
        return out

    @torch.no_grad()
    def generate(self, input_ids: Tensor, attention_mask: Tensor | None = None, max_new_tokens: int = 20,
                 num_beams: int = 1, eos_token_id: int | None = None, decoder_start_token_id: int | None = None,
                 length_penalty: float = 1.0, pad_token_id: int | None = None) -> Tensor:
        """Source (B, S) -> decoded targets (B, 1 + n), starting with the start token.

        num_beams=1 is greedy decoding; more is beam search (finished hypotheses scored by
        sum log p / length**length_penalty, Wu et al. 2016 without the +5 constant; a batch
        row stops once it has num_beams finished hypotheses). Rows that end early are padded.
        """
        start = decoder_start_token_id if decoder_start_token_id is not None else self.decoder_start_token_id
        if start is None:
            raise ValueError("generate needs decoder_start_token_id (argument or model attribute)")
        if num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {num_beams}")
        pad = pad_token_id if pad_token_id is not None else (self.pad_token_id if self.pad_token_id is not None else 0)
        was_training = self.training
        self.eval()
        try:
            memory = self.encode(input_ids, attention_mask)  # (B, S, C)
            if num_beams == 1:
                return self._greedy(memory, attention_mask, max_new_tokens, start, eos_token_id, pad)
            return self._beam(memory, attention_mask, max_new_tokens, num_beams, start, eos_token_id, pad,
                              length_penalty)
        finally:
            self.train(was_training)

    def _step(self, tokens: Tensor, memory: Tensor, mask: Tensor | None, cache: KVCache) -> Tensor:
        out = self.decoder(tokens, past_key_values=cache, encoder_hidden_states=memory, encoder_attention_mask=mask,
                           logits_to_keep=1)
        return out.logits[:, -1].float()  # (B, V)

    def _greedy(self, memory: Tensor, mask: Tensor | None, n: int, start: int, eos: int | None, pad: int) -> Tensor:
        B = memory.shape[0]
        seq = torch.full((B, 1), start, dtype=torch.long, device=memory.device)
        done = torch.zeros(B, dtype=torch.bool, device=memory.device)
        cache = KVCache()
        for _ in range(n):
            nxt = self._step(seq[:, -1:], memory, mask, cache).argmax(-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            if eos is not None:
                done |= nxt == eos
                if bool(done.all()):
                    break
        return seq

    def _beam(self, memory: Tensor, mask: Tensor | None, n: int, K: int, start: int, eos: int | None, pad: int,
              length_penalty: float) -> Tensor:
        B, dev = memory.shape[0], memory.device
        memory = memory.repeat_interleave(K, dim=0)  # (B*K, S, C)
        mask = mask.repeat_interleave(K, dim=0) if mask is not None else None
        seq = torch.full((B * K, 1), start, dtype=torch.long, device=dev)
        scores = torch.zeros(B, K, device=dev)
        scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
        done = [False] * B
        cache = KVCache()

        def norm(score: float, length: int) -> float:
            return score / (length ** length_penalty)

        for _ in range(n):
            logp = self._step(seq[:, -1:], memory, mask, cache).log_softmax(-1)  # (B*K, V)
            V = logp.shape[-1]
            cand = (scores.view(-1, 1) + logp).view(B, K * V)  # (B, K*V)
            top_scores, top_idx = cand.topk(min(2 * K, K * V), dim=1)  # (B, 2K): room for K non-eos after eos
            new_scores = torch.full((B, K), float("-inf"), device=dev)
            src = torch.zeros(B, K, dtype=torch.long, device=dev)
            tok = torch.full((B, K), pad, dtype=torch.long, device=dev)
            length = seq.shape[1]  # generated tokens so far + 1 (the one chosen now), start token excluded
            for b in range(B):
                if done[b]:
                    continue
                k = 0
                for rank, (s, i) in enumerate(zip(top_scores[b].tolist(), top_idx[b].tolist())):
                    beam, t = divmod(i, V)
                    if eos is not None and t == eos:
                        if rank < K:  # an eos outside the top K candidates is not a real contender
                            hyp = seq[b * K + beam, 1:].tolist() + [t]
                            finished[b].append((norm(s, length), hyp))
                        continue
                    new_scores[b, k], src[b, k], tok[b, k] = s, beam, t
                    k += 1
                    if k == K:
                        break
                if len(finished[b]) >= K:  # early stopping: K finished hypotheses
                    done[b] = True
            if all(done):
                break
            index = (torch.arange(B, device=dev)[:, None] * K + src).view(-1)  # (B*K,) rows to continue
            cache.reorder(index)
            seq = torch.cat([seq.index_select(0, index), tok.view(-1, 1)], dim=1)
            scores = new_scores
        results = []
        for b in range(B):
            hyps = list(finished[b])
            if not done[b]:  # the running beams compete with what finished
                for k in range(K):
                    if scores[b, k] > float("-inf"):
                        hyps.append((norm(float(scores[b, k]), seq.shape[1] - 1), seq[b * K + k, 1:].tolist()))
            results.append(max(hyps, key=lambda h: h[0])[1])
        width = 1 + max(len(r) for r in results)
        out = torch.full((B, width), pad, dtype=torch.long, device=dev)
        out[:, 0] = start
        for b, r in enumerate(results):
            out[b, 1:1 + len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    # ---- checkpoints ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> Seq2Seq:
        """An `EncoderDecoderModel` folder with BERT encoder and BERT decoder."""
        folder = Path(folder)
        raw = checkpoint.read_config(folder)
        source = str(folder / checkpoint.CONFIG)
        if raw.get("model_type") != "encoder-decoder":
            raise CheckpointError(f"{source}: expected model_type 'encoder-decoder', got {raw.get('model_type')!r}")
        for part, model in (("encoder", Encoder), ("decoder", Decoder)):
            if not isinstance(raw.get(part), dict):
                raise CheckpointError(f"{source}: missing the {part!r} config")
            mt = raw[part].get("model_type")
            if mt not in names() or not family(mt).architectures_for(model):
                able = " / ".join(f.title for f in families() if f.architectures_for(model))
                raise CheckpointError(f"{source}: unsupported {part} model_type {mt!r} (only {able} halves)")
        enc = ModelConfig.from_hf_dict(raw["encoder"], source=f"{source} (encoder)")
        dec = ModelConfig.from_hf_dict(raw["decoder"], source=f"{source} (decoder)")
        tensors, wsource = checkpoint.read_tensors(folder)
        tensors = checkpoint.old_names(tensors)
        probe = family(enc.model_type).pooler_probe
        pooler = probe is not None and "encoder." + probe in tensors
        model = cls(enc.replace(add_pooler=pooler), dec, decoder_start_token_id=raw.get("decoder_start_token_id"),
                    pad_token_id=raw.get("pad_token_id"))
        rules = checkpoint._seq2seq_rules(model.encoder.config, model.decoder.config, pooler)
        checkpoint.load_rules(model, tensors, rules, wsource, dtype)
        model.to(dtype)
        return model.eval()

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a folder that transformers' EncoderDecoderModel.from_pretrained loads."""
        enc, dec = self.encoder.config, self.decoder.config
        pooler = self.encoder.pooler is not None
        tensors = checkpoint.export_rules(self, checkpoint._seq2seq_rules(enc, dec, pooler))
        lm = next(a for a in family(dec.model_type).architectures_for(Decoder) if a.lm_head)
        hf = {"architectures": ["EncoderDecoderModel"], "model_type": "encoder-decoder", "is_encoder_decoder": True,
              "encoder": enc.to_hf_dict([family(enc.model_type).architectures_for(Encoder)[0].name]),
              "decoder": dec.to_hf_dict([lm.name]),
              "decoder_start_token_id": self.decoder_start_token_id, "pad_token_id": self.pad_token_id,
              "tie_encoder_decoder": False}
        return checkpoint.write_folder(folder, hf, tensors)
