"""ELMo (Peters et al. 2018): a character-CNN token encoder under forward and backward LSTM LMs
trained jointly, and the task-specific scalar mix of their layers used as frozen features.

- `CharVocab`: a word -> UTF-8 bytes + begin / end-of-word marks, padded to `max_chars`
  (ELMo's character ids: 256 byte values + 3 specials + padding).
- `CharCNN`: char embeddings -> 1-D convolutions of several widths, max-pooled over the characters
  (Kim et al. 2016) -> highway layers (Srivastava et al. 2015) -> a linear projection: one
  context-independent vector per word, no word vocabulary needed at the input.
- `BiLM`: a forward and a backward stack of LSTMs over the token vectors, with one softmax over a
  word vocabulary shared by both directions (ELMo eq. 1: the token representation and softmax
  parameters are tied across directions, the LSTMs are not). Its loss is the mean of the two
  directions' next-word / previous-word cross-entropies.
- `ScalarMix`: ELMo eq. 1, ELMo_task = gamma * sum_j softmax(s)_j h_j over the L + 1 layers
  (layer 0 = the char-CNN vector, repeated for both directions).
- `BiLM.layers(words)`: the L + 1 layer states (B, T, 2H), for frozen features under any head;
  `ElmoWithHead(bilm, head)` puts them, mixed, under a head of heads/ (softmax or CRF tagging,
  classification); `ElmoTagger` is the plain linear softmax tagger.

Does not: the published 2 x 4096 / 512 model and its weights (none exist here), layer norm on the
mixed features, or sampled softmax.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn
from torch.nn import functional as F

BOW, EOW, PAD_CHAR = 256, 257, 258  # begin / end of word; the padding id is 258 (embedding row zeroed)


class CharVocab:
    """word -> (max_chars,) ids: BOW, the word's UTF-8 bytes (cut to max_chars - 2), EOW, padding."""

    def __init__(self, max_chars: int = 50):
        if max_chars < 3:
            raise ValueError("max_chars must be >= 3 (BOW, a byte, EOW)")
        self.max_chars = max_chars

    def encode_word(self, word: str) -> list[int]:
        b = list(word.encode("utf-8"))[:self.max_chars - 2]
        ids = [BOW, *b, EOW]
        return ids + [PAD_CHAR] * (self.max_chars - len(ids))

    def encode(self, sentences: list[list[str]]) -> tuple[Tensor, Tensor]:
        """(B, T, max_chars) char ids and the (B, T) word mask, right-padded."""
        T = max(len(s) for s in sentences)
        ids = torch.full((len(sentences), T, self.max_chars), PAD_CHAR, dtype=torch.long)
        mask = torch.zeros(len(sentences), T, dtype=torch.bool)
        for b, s in enumerate(sentences):
            for t, w in enumerate(s):
                ids[b, t] = torch.tensor(self.encode_word(w))
                mask[b, t] = True
        return ids, mask


class Highway(nn.Module):
    """y = g * relu(W_h x) + (1 - g) * x, g = sigmoid(W_g x) (Srivastava et al. 2015)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * dim)
        nn.init.constant_(self.proj.bias[dim:], 1.0)  # carry the input at first (a positive gate bias)

    def forward(self, x: Tensor) -> Tensor:
        h, g = self.proj(x).chunk(2, -1)
        g = torch.sigmoid(g)
        return g * F.relu(h) + (1 - g) * x


class CharCNN(nn.Module):
    """(B, T, C) char ids -> (B, T, out_dim) word vectors."""

    def __init__(self, char_dim: int = 16, filters: tuple[tuple[int, int], ...] = ((1, 32), (2, 32), (3, 64), (4, 128)),
                 highway_layers: int = 1, out_dim: int = 128):
        super().__init__()
        self.embed = nn.Embedding(PAD_CHAR + 1, char_dim, padding_idx=PAD_CHAR)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, n, w) for w, n in filters)
        n_filters = sum(n for _, n in filters)
        self.highways = nn.ModuleList(Highway(n_filters) for _ in range(highway_layers))
        self.proj = nn.Linear(n_filters, out_dim)
        # Not in ELMo: a layer norm on the token vector. Without it the vectors start ~0.14 in size with
        # words differing by ~0.05 (the max-pooled filters share a floor), the LSTMs barely see which
        # word came, and on PTB + WNUT the biLM sat at the unigram model's loss for 1,500 steps (6.61
        # vs 6.64) while the vectors grew to ~14 in size and saturated the LSTMs (docs/benchmarks.md).
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, chars: Tensor) -> Tensor:
        B, T, C = chars.shape
        x = self.embed(chars.view(B * T, C)).transpose(1, 2)  # (B*T, char_dim, C)
        # Kim et al. 2016: each filter max-pooled over the word's characters
        h = torch.cat([torch.tanh(conv(x)).max(-1).values for conv in self.convs], -1)  # (B*T, n_filters)
        for hw in self.highways:
            h = hw(h)
        return self.norm(self.proj(h)).view(B, T, -1)  # (B, T, out_dim)


class ScalarMix(nn.Module):
    """ELMo eq. 1: gamma * sum_j softmax(s)_j h_j over a list of same-shaped layer states."""

    def __init__(self, n_layers: int):
        super().__init__()
        self.scalars = nn.Parameter(torch.zeros(n_layers))  # s: uniform weights at the start
        self.gamma = nn.Parameter(torch.ones(()))

    def forward(self, layers: list[Tensor]) -> Tensor:
        w = self.scalars.softmax(0)
        return self.gamma * sum(w[j] * h for j, h in enumerate(layers))


class BiLM(nn.Module):
    """Char-CNN -> forward and backward LSTM stacks -> one shared softmax over `vocab_size` words."""

    def __init__(self, vocab_size: int, dim: int = 128, num_layers: int = 2, max_chars: int = 50,
                 dropout: float = 0.1, **cnn_kwargs):
        super().__init__()
        self.chars = CharVocab(max_chars)
        self.cnn = CharCNN(out_dim=dim, **cnn_kwargs)
        self.fwd = nn.ModuleList(nn.LSTM(dim, dim, batch_first=True) for _ in range(num_layers))
        self.bwd = nn.ModuleList(nn.LSTM(dim, dim, batch_first=True) for _ in range(num_layers))
        self.drop = nn.Dropout(dropout)
        self.softmax = nn.Linear(dim, vocab_size)  # shared by both directions (ELMo sec. 3.1)
        self.dim, self.num_layers = dim, num_layers

    @staticmethod
    def _reverse(x: Tensor, mask: Tensor) -> Tensor:
        """Reverse each sequence's real positions (right padding stays at the right). x (B, T, ...)."""
        lengths = mask.long().sum(1)  # (B,)
        T = x.shape[1]
        idx = torch.arange(T, device=x.device).unsqueeze(0).expand(x.shape[0], T)  # (B, T)
        rev = (lengths.unsqueeze(1) - 1 - idx).clamp(min=0)
        rev = torch.where(idx < lengths.unsqueeze(1), rev, idx)  # pads keep their place
        return x.gather(1, rev.view(*rev.shape, *([1] * (x.dim() - 2))).expand_as(x))

    def _run(self, stack: nn.ModuleList, x: Tensor) -> list[Tensor]:
        outs = []
        for i, layer in enumerate(stack):
            h, _ = layer(self.drop(x))  # (B, T, H)
            x = h + x if i > 0 else h  # residual between LSTM layers (ELMo sec. 3.4)
            outs.append(x)
        return outs

    def layers(self, chars: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """(forward states, backward states (in the input's order), token vectors): each (B, T, H)."""
        tok = self.cnn(chars)  # (B, T, H)
        f = self._run(self.fwd, tok)
        b = [self._reverse(h, mask) for h in self._run(self.bwd, self._reverse(tok, mask))]
        return f, b, tok

    def features(self, sentences: list[list[str]]) -> tuple[list[Tensor], Tensor]:
        """The L + 1 ELMo layers, each (B, T, 2H): [x; x] for layer 0, then [f_j; b_j]; and the mask."""
        chars, mask = self.chars.encode(sentences)
        dev = self.softmax.weight.device
        chars, mask = chars.to(dev), mask.to(dev)
        f, b, tok = self.layers(chars, mask)
        return [torch.cat([tok, tok], -1)] + [torch.cat([fj, bj], -1) for fj, bj in zip(f, b)], mask

    def loss(self, chars: Tensor, mask: Tensor, word_ids: Tensor) -> dict[str, Tensor]:
        """Mean of the forward (predict t + 1) and backward (predict t - 1) cross-entropies."""
        f, b, _ = self.layers(chars, mask)
        valid = mask[:, 1:] & mask[:, :-1]  # (B, T-1): pairs of real neighbours
        lf = self.softmax(self.drop(f[-1][:, :-1]))[valid]  # (N, V): state at t predicts word t + 1
        lb = self.softmax(self.drop(b[-1][:, 1:]))[valid]  # state at t + 1 predicts word t
        ce_f = F.cross_entropy(lf, word_ids[:, 1:][valid])
        ce_b = F.cross_entropy(lb, word_ids[:, :-1][valid])
        return {"loss": (ce_f + ce_b) / 2, "forward_ce": ce_f.detach(), "backward_ce": ce_b.detach()}


    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The Trainer's step: a batch from `BiLMCollate`."""
        return self.loss(batch["chars"], batch["attention_mask"], batch["word_ids"])


class BiLMCollate:
    """Sentences (lists of words) -> {"chars" (B, T, C), "attention_mask" (B, T), "word_ids" (B, T)}:
    the characters feed the CNN, the word ids (0 = <unk>) are the softmax targets."""

    def __init__(self, stoi: dict[str, int], chars: CharVocab, max_len: int = 64):
        self.stoi, self.chars, self.max_len = stoi, chars, max_len

    def __call__(self, sentences: list[list[str]]) -> dict[str, Tensor]:
        sentences = [s[:self.max_len] for s in sentences]
        chars, mask = self.chars.encode(sentences)
        ids = torch.zeros(mask.shape, dtype=torch.long)
        for b, s in enumerate(sentences):
            ids[b, :len(s)] = torch.tensor([self.stoi.get(w, 0) for w in s])
        return {"chars": chars, "attention_mask": mask, "word_ids": ids}


class _FrozenElmo(nn.Module):
    """A frozen biLM and a task scalar mix of its layers: `mixed(sentences)` -> (B, T, 2H), (B, T) mask."""

    def __init__(self, bilm: BiLM):
        super().__init__()
        self.bilm = [bilm]  # frozen, not a registered submodule: its weights are not trained or saved here
        self.mix = ScalarMix(bilm.num_layers + 1)

    def mixed(self, sentences: list[list[str]]) -> tuple[Tensor, Tensor]:
        bilm = self.bilm[0].eval()
        with torch.no_grad():
            layers, mask = bilm.features(sentences)
        return self.mix(layers), mask  # only the mix gets gradients


class ElmoWithHead(_FrozenElmo):
    """Frozen ELMo features and a task scalar mix under any head of heads/ (TokenTagger, CRFTagger,
    ClassificationHead, ...): the head gets the mixed (B, T, 2H) states, and the word mask as
    `attention_mask` when its forward takes one (ClassificationHead's pooling does)."""

    def __init__(self, bilm: BiLM, head: nn.Module):
        super().__init__(bilm)
        self.head = head
        self._wants_mask = "attention_mask" in inspect.signature(head.forward).parameters

    def forward(self, sentences: list[list[str]]) -> tuple[Tensor, Tensor]:
        """Lists of words -> (the head's output, the (B, T) word mask)."""
        x, mask = self.mixed(sentences)
        return (self.head(x, attention_mask=mask) if self._wants_mask else self.head(x)), mask


class ElmoTagger(_FrozenElmo):
    """Frozen ELMo features -> ScalarMix -> dropout -> linear tag scores (a softmax tagging head)."""

    def __init__(self, bilm: BiLM, num_tags: int, dropout: float = 0.2):
        super().__init__(bilm)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * bilm.dim, num_tags)

    def forward(self, sentences: list[list[str]]) -> tuple[Tensor, Tensor]:
        x, mask = self.mixed(sentences)
        return self.out(self.drop(x)), mask  # (B, T, K), (B, T)
