"""CoVe (McCann et al. 2017): the encoder of a sequence-to-sequence LSTM, run over GloVe vectors,
used as contextual word features [GloVe(w); CoVe(w)].

- `CoVe`: frozen GloVe input embeddings -> a two-layer bidirectional LSTM (the "MT-LSTM") -> an
  LSTM decoder with global attention (Luong et al. 2015, "general" score, attentional hidden state
  tanh(W_c [c_t; h_t]), no input feeding) over the encoder states, predicting the target words.
- `features(src_ids, mask)`: [GloVe(w); CoVe(w)] per word, (B, T, d_glove + 2H) (McCann eq. 6).
- `denoise`: the training pairs used here. No translation data exists on this machine, so the
  seq2seq model is trained as a denoising autoencoder on monolingual sentences (Lample et al. 2018's
  noise: drop each word with probability 0.1, then shuffle words by at most k = 3 positions):
  source = the noised sentence, target = the original one. This is not McCann's English-German
  MT training; its features are what a reconstruction objective teaches the encoder.

Does not: beam search or any decoding for its own sake (only the encoder is the product), the
published CoVe weights, or character-level inputs.
"""

from __future__ import annotations

import random

import torch
from torch import Tensor, nn
from torch.nn import functional as F

BOS, EOS_ID, PAD_ID = 1, 2, 3  # target vocabulary: 0 <unk>, 1 <bos>, 2 <eos>, 3 <pad>, then words


def denoise(words: list[str], rng: random.Random, p_drop: float = 0.1, k: int = 3) -> list[str]:
    """Lample et al. 2018 sec. 2.3: word dropout, then a local shuffle where word i moves to the
    sorted position of i + U(0, k + 1) (no word moves more than k places)."""
    kept = [w for w in words if rng.random() >= p_drop] or words[:1]
    keys = [i + rng.uniform(0, k + 1) for i in range(len(kept))]
    return [w for _, w in sorted(zip(keys, kept), key=lambda x: x[0])]


class CoVe(nn.Module):
    def __init__(self, glove: Tensor, tgt_vocab_size: int, hidden: int = 128, dropout: float = 0.2):
        super().__init__()
        # source ids index the GloVe matrix; its last row is an all-zero <unk> / padding vector
        self.embed = nn.Embedding.from_pretrained(torch.cat([glove, glove.new_zeros(1, glove.shape[1])]),
                                                  freeze=True)
        self.unk_id = glove.shape[0]
        self.encoder = nn.LSTM(glove.shape[1], hidden, num_layers=2, bidirectional=True, batch_first=True,
                               dropout=dropout)  # McCann sec. 3: a two-layer bidirectional LSTM
        self.tgt_embed = nn.Embedding(tgt_vocab_size, hidden)
        self.decoder = nn.LSTM(hidden, 2 * hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.attn = nn.Linear(2 * hidden, 2 * hidden, bias=False)  # "general": score = h_t^T W h_s
        self.combine = nn.Linear(4 * hidden, 2 * hidden)
        self.out = nn.Linear(2 * hidden, tgt_vocab_size)
        self.drop = nn.Dropout(dropout)
        self.hidden = hidden

    def encode(self, src: Tensor, mask: Tensor) -> Tensor:
        """(B, T) GloVe row ids, (B, T) mask -> (B, T, 2H) CoVe(w) (padding packed away)."""
        lengths = mask.long().sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(src), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.encoder(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return out  # (B, T, 2H), zeros at padding

    def features(self, src: Tensor, mask: Tensor) -> Tensor:
        """McCann eq. 6: w~ = [GloVe(w); CoVe(w)], (B, T, d + 2H)."""
        return torch.cat([self.embed(src), self.encode(src, mask)], -1)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Teacher-forced cross-entropy of the target words (a Trainer model)."""
        src, mask, tgt_in, tgt_out = batch["src"], batch["attention_mask"], batch["tgt_in"], batch["tgt_out"]
        enc = self.encode(src, mask)  # (B, S, 2H)
        dec, _ = self.decoder(self.drop(self.tgt_embed(tgt_in)))  # (B, U, 2H)
        scores = dec @ self.attn(enc).transpose(1, 2)  # (B, U, S)
        scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        ctx = scores.softmax(-1) @ enc  # (B, U, 2H)
        h = torch.tanh(self.combine(torch.cat([ctx, dec], -1)))  # Luong eq. 5: the attentional state
        logits = self.out(self.drop(h))  # (B, U, V)
        keep = tgt_out != PAD_ID
        loss = F.cross_entropy(logits[keep], tgt_out[keep])
        return {"loss": loss, "accuracy": (logits[keep].argmax(-1) == tgt_out[keep]).float().mean()}


class DenoisingPairs:
    """Collate for `CoVe`: sentences -> noised source (GloVe ids) and the original target words.
    The noise is drawn from a generator the Trainer re-seeds per step (`set_seed`), so it resumes exactly."""

    def __init__(self, glove_index: dict[str, int], unk_id: int, tgt_stoi: dict[str, int], max_len: int = 50):
        self.glove_index, self.unk_id, self.tgt_stoi, self.max_len = glove_index, unk_id, tgt_stoi, max_len
        self.rng = random.Random(0)

    def set_seed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def source_ids(self, words: list[str]) -> list[int]:
        return [self.glove_index.get(w.lower(), self.unk_id) for w in words]

    def __call__(self, sentences: list[list[str]]) -> dict[str, Tensor]:
        sentences = [s[:self.max_len] for s in sentences]
        srcs = [self.source_ids(denoise(s, self.rng)) for s in sentences]
        tgts = [[self.tgt_stoi.get(w, 0) for w in s] for s in sentences]
        S, U = max(map(len, srcs)), max(map(len, tgts)) + 1
        src = torch.full((len(srcs), S), self.unk_id, dtype=torch.long)
        mask = torch.zeros(len(srcs), S, dtype=torch.bool)
        tin = torch.full((len(tgts), U), PAD_ID, dtype=torch.long)
        tout = torch.full((len(tgts), U), PAD_ID, dtype=torch.long)
        for b, (s, t) in enumerate(zip(srcs, tgts)):
            src[b, :len(s)] = torch.tensor(s)
            mask[b, :len(s)] = True
            tin[b, :len(t) + 1] = torch.tensor([BOS, *t])
            tout[b, :len(t) + 1] = torch.tensor([*t, EOS_ID])
        return {"src": src, "attention_mask": mask, "tgt_in": tin, "tgt_out": tout}
