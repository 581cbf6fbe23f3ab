"""`Encoder`: the BERT family (Devlin et al. 2019), bidirectional post-LN Transformer + pooler.

    x_0 = LN(word + position + token_type embeddings)
    x_l = Block(x_{l-1})               l = 1..L   (post-LN, no causal mask; padding masked)
    pooler_output = tanh(W x_L[:, 0] + b)   (the [CLS] position)

Loads and saves Hugging Face BERT folders (`from_pretrained` / `save_pretrained`; the family's
key map in families/bert.py, files through checkpoint.py), so all-MiniLM-L6-v2 and the Turc et
al. 2019 small BERTs load directly.

Speed: attention never runs over trailing columns that are padding in every row of the batch
(they are cut before the first layer and put back as zeros), and without any padding no mask
is passed, so SDPA takes its fused kernel. Hidden states at padding positions are unspecified.

What this file does not do: tokenise, pool sentences (embeddings/contextual.py), or compute any
loss (objectives/, heads/).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checkpoint
from .config import ModelConfig
from .layers import Block, Embeddings, ModelOutput, build_attention_mask, init_weights


class Pooler(nn.Module):
    """BERT's pooler: tanh(W h_[CLS] + b) (Devlin et al. 2019, sec. 3, used for NSP)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.dense(x[:, 0]))  # (B, C)


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.causal:
            raise ValueError(f"Encoder needs a bidirectional config, got model_type={config.model_type!r} "
                             f"is_decoder={config.is_decoder}; use Decoder")
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.pooler = Pooler(config) if config.add_pooler else None
        init_weights(self, config.initializer_range)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                output_hidden_states: bool = False) -> ModelOutput:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        T_used = T
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {(B, T)}")
            # Columns that are padding in every row: drop them, attention never sees them.
            used = attention_mask.bool().any(0).nonzero()
            T_used = int(used[-1]) + 1 if len(used) else 1
            if T_used < T:
                input_ids, attention_mask = input_ids[:, :T_used], attention_mask[:, :T_used]
                if token_type_ids is not None:
                    token_type_ids = token_type_ids[:, :T_used]
        positions = torch.arange(T_used, device=input_ids.device).expand(B, T_used)  # (B, T)
        x = self.embeddings(input_ids, positions, token_type_ids)  # (B, T, C)
        mask, _ = build_attention_mask(attention_mask, T_used, T_used, causal=False)
        hidden = [x] if output_hidden_states else None
        for block in self.layers:
            x = block(x, mask)
            if hidden is not None:
                hidden.append(x)
        pooled = self.pooler(x) if self.pooler is not None else None
        if T_used < T:  # put the cut columns back, as zeros
            x = F.pad(x, (0, 0, 0, T - T_used))
            if hidden is not None:
                hidden = [F.pad(h, (0, 0, 0, T - T_used)) for h in hidden]
        return ModelOutput(last_hidden_state=x, pooler_output=pooled,
                           hidden_states=tuple(hidden) if hidden is not None else None)

    # ---- Hugging Face folders --------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> Encoder:
        """Load a BERT folder (config.json + model.safetensors or pytorch_model.bin).

        Works for BertModel and for BertForMaskedLM / BertForPreTraining / ... folders (the
        `bert.` prefix is recognised; head tensors are left to `checkpoint.read_tensors`).
        """
        return checkpoint.load_model(folder, Encoder, dtype=dtype)

    def save_pretrained(self, folder: str | Path, extra_tensors: dict[str, Tensor] | None = None,
                        architectures: list[str] | None = None) -> Path:
        """Write a folder transformers reads with AutoModel (or the given `architectures`).

        extra_tensors: head weights under their HF names (e.g. "cls.predictions.transform.dense.weight");
        when given, encoder weights are written under the "bert." prefix, as BertFor* models expect.
        """
        return checkpoint.save_model(self, folder, extra_tensors=extra_tensors, architectures=architectures)
