"""Pretraining objectives over a model's hidden states: MLM, NSP, SBO and causal LM.

- `MLMHead` (BERT sec. 3.1 task #1): transform (dense + GELU + LayerNorm), then a decoder tied to
  the word embeddings plus an output bias. It computes vocabulary logits only at the chosen
  positions (gather first, then project): with 15% chosen that is ~6.7x fewer rows in the largest
  matrix product of the step. Its loss and accuracy come from `softmax_cross_entropy`: one softmax
  pass over the (N, V) logits serves the loss, the accuracy and the gradient (see its docstring).
- `NSPHead` (BERT sec. 3.1 task #2): W_NSP in R^{2 x C} over the pooled [CLS] vector.
- `SpanBoundaryHead` (SpanBERT, Joshi et al. 2020 sec. 3.2): predicts each token of a masked span
  from the two boundary tokens' outputs and a relative position embedding.
- `causal_lm_loss`: next-token cross-entropy (labels shifted inside).
- `PretrainingModel`: an encoder plus the chosen objectives; forward(batch) returns the total loss
  and each component by name, the contract the trainer logs.
- `CausalLMModel`: a decoder plus the causal LM loss, for the GPT / Llama presets.

Module names follow Hugging Face BERT (`cls.predictions.transform.dense`,
`cls.predictions.transform.LayerNorm`, `cls.predictions.bias`, `cls.predictions.decoder`,
`cls.seq_relationship`), so `PretrainingModel.cls.state_dict()` prefixed with "cls." is exactly
what `BertForMaskedLM` / `BertForPreTraining` load.

Does not: mask tokens (objectives/masking.py does, in the collator), know about tokenizers, or
build the encoder (models/ does).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .masking import IGNORE_INDEX


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (N, V) logits against (N,) targets, and the accuracy, from one softmax.

    loss_i = lse_i - z_{i,t}, with the log-sum-exp read off the softmax itself:
    p_max = exp(m - lse) for the row maximum m, so lse = m - log(p_max), and p_max >= 1/V never
    underflows (a loss as large as the logits allow stays finite and exact). The gradient of the
    mean is (softmax - onehot) / N (e.g. Goodfellow et al. 2016, sec. 6.2.2.3), made in place in
    the saved softmax: no log-softmax output, no zero-filled one-hot, no second pass in backward.
    Correct means the target's logit is the row's maximum (argmax up to exact ties, which count
    as correct), from the same maximum: a max reduction instead of an argmax over (N, V).
    The arithmetic is fp32 whatever the logits' dtype (bf16 under autocast); the gradient is
    returned in the logits' dtype. Backward runs once (the saved softmax becomes the gradient).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = logits.float()  # (N, V)
        rows = torch.arange(z.shape[0], device=z.device)
        m = z.amax(-1)  # (N,)
        probs = torch.softmax(z, -1)  # (N, V)
        z_t = z[rows, targets]  # (N,)
        lse = m - probs.amax(-1).log()  # (N,)
        loss = (lse - z_t).mean()
        accuracy = (z_t >= m).float().mean()
        ctx.save_for_backward(probs, targets)
        ctx.in_dtype = logits.dtype
        ctx.mark_non_differentiable(accuracy)
        return loss, accuracy

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss: torch.Tensor, _grad_acc: torch.Tensor) -> tuple[torch.Tensor, None]:
        probs, targets = ctx.saved_tensors
        n = probs.shape[0]
        probs[torch.arange(n, device=probs.device), targets] -= 1.0  # softmax - onehot, in place
        return probs.mul_(grad_loss / n).to(ctx.in_dtype), None  # (N, V)


class _TiedDecoder(torch.autograd.Function):
    """x W^T + b (F.linear) whose weight gradient is made contiguous, (V, C) like W itself.

    The decoder's W is the word-embedding matrix (tied), so W gets two gradients per step: this
    one and the embedding lookup's. Autograd's linear hands over its weight gradient as the
    transpose of a (C, V) product, and a transposed first gradient makes the engine sum the two
    out of place: a fresh (V, C) buffer every step (measured ~10x the in-place add on CPU for
    8,000 x 128). Computed as G^T x, the gradient is (V, C) row-major and the second one is added
    into it in place. Under autocast it computes in the autocast dtype, as F.linear would.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        dev = x.device.type
        if torch.is_autocast_enabled(dev):  # do what autocast does to F.linear, by hand
            dt = torch.get_autocast_dtype(dev)
            xc, wc, bc = x.to(dt), weight.to(dt), None if bias is None else bias.to(dt)
        else:
            xc, wc, bc = x, weight, bias
        with torch.autocast(dev, enabled=False):
            out = torch.mm(xc, wc.t()) if bc is None else torch.addmm(bc, xc, wc.t())  # (N, V)
        ctx.save_for_backward(xc, wc)
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        xc, wc = ctx.saved_tensors
        x_dt, w_dt, b_dt = ctx.dtypes
        g = grad.to(xc.dtype)  # (N, V)
        grad_x = torch.mm(g, wc).to(x_dt) if ctx.needs_input_grad[0] else None  # (N, C)
        grad_w = torch.mm(g.t(), xc).to(w_dt) if ctx.needs_input_grad[1] else None  # (V, C), contiguous
        grad_b = grad.float().sum(0).to(b_dt) if b_dt is not None and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def tied_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) for x (N, C), with the weight gradient laid out as the weight
    (`_TiedDecoder`): the output layer of a model whose embeddings are tied to it."""
    return _TiedDecoder.apply(x, weight, bias)


def softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy, accuracy) of (N, V) logits against (N,) targets in [0, V); N >= 1.

    Equal to F.cross_entropy(logits.float(), targets) and to (logits.argmax(-1) == targets).mean()
    (up to exact ties), in about a quarter of their time on CPU (_SoftmaxCrossEntropy)."""
    if targets.numel() == 0:
        raise ValueError("softmax_cross_entropy needs at least one row")
    return _SoftmaxCrossEntropy.apply(logits, targets)


class MLMTransform(nn.Module):
    """dense -> GELU -> LayerNorm, BERT's `BertPredictionHeadTransform`."""

    def __init__(self, hidden_size: int, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)  # HF's name, kept for loading

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(F.gelu(self.dense(x)))


class MLMHead(nn.Module):
    """Masked-LM head with its decoder tied to the word embeddings (BERT sec. 3.1; Press & Wolf 2017)."""

    def __init__(self, hidden_size: int, vocab_size: int, embedding_weight: nn.Parameter | None = None,
                 layer_norm_eps: float = 1e-12):
        super().__init__()
        self.transform = MLMTransform(hidden_size, layer_norm_eps)
        self.decoder = nn.Linear(hidden_size, vocab_size, bias=True)
        if embedding_weight is not None:
            if tuple(embedding_weight.shape) != (vocab_size, hidden_size):
                raise ValueError(f"tied embedding weight has shape {tuple(embedding_weight.shape)}, "
                                 f"expected ({vocab_size}, {hidden_size})")
            self.decoder.weight = embedding_weight  # tied: one tensor, two names
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.decoder.bias = self.bias  # HF ties cls.predictions.decoder.bias to cls.predictions.bias

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits for the rows given: (..., C) -> (..., V). Pass only the chosen rows."""
        x = self.transform(hidden)
        rows = x.reshape(-1, x.shape[-1])  # (N, C)
        logits = tied_linear(rows, self.decoder.weight, self.decoder.bias)  # (N, V)
        return logits.view(*x.shape[:-1], logits.shape[-1])  # (..., V)

    def logits_at(self, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather the positions with a label, then project: returns ((N, V) logits, (N,) targets)."""
        chosen = labels != IGNORE_INDEX  # (B, T)
        return self(hidden[chosen]), labels[chosen]  # (N, C) -> (N, V)

    @staticmethod
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the chosen positions (0 when none is chosen, keeping the graph)."""
        return MLMHead.loss_and_accuracy(logits, targets)[0]

    @staticmethod
    def loss_and_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean cross-entropy, accuracy) over the chosen positions, from one softmax
        (`softmax_cross_entropy`); (0 keeping the graph, 0) when none is chosen."""
        if targets.numel() == 0:
            return logits.sum() * 0.0, logits.new_zeros((), dtype=torch.float32)
        return softmax_cross_entropy(logits, targets)


class NSPHead(nn.Linear):
    """Next-sentence prediction: W_NSP in R^{2 x C} (plus a bias) over the pooled [CLS] (BERT sec. 3.1).

    Label 0 means B is the actual next segment ("IsNext"), 1 that B is random ("NotNext"), as in
    BERT's TF code and Hugging Face's `next_sentence_label`. A plain Linear(C, 2), so that it saves
    as HF's `cls.seq_relationship.{weight,bias}`.
    """

    def __init__(self, hidden_size: int):
        super().__init__(hidden_size, 2)  # forward: (B, C) -> (B, 2)

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels)


class SpanBoundaryHead(nn.Module):
    """SpanBERT's span boundary objective (Joshi et al. 2020 sec. 3.2).

    For a masked span (x_s .. x_e) and a token x_i in it, with p_{i-s+1} a relative position
    embedding: h0 = [y_{s-1}; y_{e+1}; p_{i-s+1}], h1 = LayerNorm(GeLU(W1 h0)),
    y_i = LayerNorm(GeLU(W2 h1)), and y_i is scored against the vocabulary with the tied output
    embedding plus its own bias.
    """

    def __init__(self, hidden_size: int, vocab_size: int, embedding_weight: nn.Parameter | None = None,
                 max_positions: int = 64, position_size: int | None = None, layer_norm_eps: float = 1e-12):
        super().__init__()
        # spans are at most 10 words (SpanBERT sec. 3.1) but a word can be several pieces: 64 tokens
        # is room enough; longer offsets share the last embedding.
        self.max_positions = max_positions
        d_pos = position_size or hidden_size
        self.position_embeddings = nn.Embedding(max_positions, d_pos)
        self.mlp = nn.Sequential(
            nn.Linear(2 * hidden_size + d_pos, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size, eps=layer_norm_eps),
            nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.LayerNorm(hidden_size, eps=layer_norm_eps),
        )
        self.decoder = nn.Linear(hidden_size, vocab_size, bias=True)
        if embedding_weight is not None:
            self.decoder.weight = embedding_weight

    def forward(self, hidden: torch.Tensor, labels: torch.Tensor, span_start: torch.Tensor,
                span_end: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, T, C); labels, span_start, span_end (B, T). Returns ((N, V) logits, (N,) targets)."""
        B, T, C = hidden.shape
        b, i = (labels != IGNORE_INDEX).nonzero(as_tuple=True)  # (N,), (N,)
        s, e = span_start[b, i], span_end[b, i]
        if (s < 1).any() or (e + 1 >= T).any():
            raise ValueError("a masked span touches the sequence edge: SBO needs a token on each side")
        left, right = hidden[b, s - 1], hidden[b, e + 1]  # (N, C) each
        rel = (i - s).clamp(max=self.max_positions - 1)  # 0 for the first token of the span
        h0 = torch.cat([left, right, self.position_embeddings(rel)], dim=-1)  # (N, 2C + d_pos)
        return tied_linear(self.mlp(h0), self.decoder.weight, self.decoder.bias), labels[b, i]  # (N, V), (N,)

    @staticmethod
    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return MLMHead.loss(logits, targets)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: position t predicts labels[t + 1]; -100 labels are ignored.

    logits (B, T, V), labels (B, T) (usually the input ids with padding set to -100).
    """
    shift_logits = logits[:, :-1].reshape(-1, logits.size(-1))  # (B * (T-1), V)
    shift_labels = labels[:, 1:].reshape(-1)  # (B * (T-1),)
    return F.cross_entropy(shift_logits.float(), shift_labels, ignore_index=IGNORE_INDEX)


def _word_embedding_weight(model: nn.Module) -> nn.Parameter:
    if hasattr(model, "get_input_embeddings"):
        return model.get_input_embeddings().weight
    for name, mod in model.named_modules():
        if name.endswith("word_embeddings") or name.endswith("wte") or name.endswith("embed_tokens"):
            return mod.weight
    raise ValueError(f"{type(model).__name__} has no get_input_embeddings() and no word embedding module")


class PretrainingHeads(nn.Module):
    """The HF-named container: `.predictions` (MLM) and `.seq_relationship` (NSP, or None)."""

    def __init__(self, hidden_size: int, vocab_size: int, embedding_weight: nn.Parameter | None,
                 nsp: bool, layer_norm_eps: float):
        super().__init__()
        self.predictions = MLMHead(hidden_size, vocab_size, embedding_weight, layer_norm_eps)
        self.seq_relationship = NSPHead(hidden_size) if nsp else None

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors under Hugging Face BERT's names, without the two tied ones (decoder.weight is
        the word embedding, decoder.bias is cls.predictions.bias; HF re-ties both on load)."""
        tied = {"predictions.decoder.weight", "predictions.decoder.bias"}
        return {f"cls.{k}": v.detach() for k, v in self.state_dict().items() if k not in tied}


class PretrainingModel(nn.Module):
    """An encoder plus MLM and optionally NSP (BERT) or SBO (SpanBERT) objectives.

    forward(batch) reads input_ids, attention_mask, token_type_ids, labels (MLM, -100 elsewhere),
    next_sentence_label (NSP) and span_start / span_end (SBO) and returns
    {"loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy", "sbo_loss"} (the ones in use).
    The total is the plain sum, as in both papers.
    """

    def __init__(self, encoder: nn.Module, hidden_size: int, vocab_size: int, *, nsp: bool = True,
                 sbo: bool = False, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.encoder = encoder
        emb = _word_embedding_weight(encoder)
        self.cls = PretrainingHeads(hidden_size, vocab_size, emb, nsp, layer_norm_eps)
        self.sbo = SpanBoundaryHead(hidden_size, vocab_size, emb, layer_norm_eps=layer_norm_eps) if sbo else None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        out = self.encoder(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                           token_type_ids=batch.get("token_type_ids"))
        hidden = out.last_hidden_state  # (B, T, C)
        labels = batch["labels"]
        logits, targets = self.cls.predictions.logits_at(hidden, labels)  # (N, V), (N,)
        mlm_loss, mlm_accuracy = MLMHead.loss_and_accuracy(logits, targets)
        result: dict[str, Any] = {"mlm_loss": mlm_loss, "mlm_accuracy": mlm_accuracy}
        total = mlm_loss
        if self.cls.seq_relationship is not None:
            if out.pooler_output is None:
                raise ValueError("NSP needs the encoder's pooled output (build the encoder with its pooler)")
            nsp_logits = self.cls.seq_relationship(out.pooler_output)  # (B, 2)
            nsp_loss = NSPHead.loss(nsp_logits, batch["next_sentence_label"])
            total = total + nsp_loss
            result["nsp_loss"] = nsp_loss
            with torch.no_grad():
                result["nsp_accuracy"] = (nsp_logits.argmax(-1) == batch["next_sentence_label"]).float().mean()
        if self.sbo is not None:
            sbo_logits, sbo_targets = self.sbo(hidden, labels, batch["span_start"], batch["span_end"])
            sbo_loss = SpanBoundaryHead.loss(sbo_logits, sbo_targets)
            total = total + sbo_loss  # SpanBERT sec. 3.2: L = L_MLM + L_SBO
            result["sbo_loss"] = sbo_loss
        result["loss"] = total
        return result


class CausalLMModel(nn.Module):
    """A decoder returning logits (B, T, V) plus the causal LM loss, for the GPT / Llama presets."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        out = self.decoder(batch["input_ids"], attention_mask=batch.get("attention_mask"))
        logits = out.logits if hasattr(out, "logits") else out  # (B, T, V)
        labels = batch.get("labels", batch["input_ids"])
        loss = causal_lm_loss(logits, labels)
        return {"loss": loss, "lm_loss": loss}


class MLMEvaluator:
    """Held-out masked-LM accuracy on fixed batches, with the unigram baseline on the same masks.

    The batches are collated (masked) once, so every evaluation scores the same positions: the
    curve moves only because the model does. `baseline_token` is the most frequent non-special
    token of the TRAINING corpus; answering it at every chosen position is the unigram baseline
    (what a model that learned only the token frequencies gets), `unigram_accuracy`.

    Called by the Trainer (`eval_fn`) with the model in eval mode under no_grad; returns
    token-weighted means over all chosen positions of all batches: mlm_loss, mlm_accuracy,
    unigram_accuracy (constant, logged beside the curve), masked_tokens, and nsp_accuracy
    (sequence mean) when the model has NSP.
    """

    def __init__(self, batches: list[dict[str, torch.Tensor]], baseline_token: int):
        if not batches:
            raise ValueError("MLMEvaluator needs at least one held-out batch")
        self.batches, self.baseline_token = batches, int(baseline_token)
        targets = torch.cat([b["labels"][b["labels"] != IGNORE_INDEX] for b in batches])  # (N,)
        if targets.numel() == 0:
            raise ValueError("the held-out batches have no masked position to score")
        self.masked_tokens = targets.numel()
        self.unigram_accuracy = float((targets == self.baseline_token).float().mean())

    @classmethod
    def from_dataset(cls, dataset, collate, *, n_examples: int, batch_size: int, seed: int,
                     counts, special_ids: list[int]) -> "MLMEvaluator":
        """Take `n_examples` examples spread over `dataset` (a seeded choice), mask them once with
        `collate` re-seeded to `seed`, and use the most frequent non-special token of `counts`
        (the training corpus's unigram counts, (V,)) as the baseline answer."""
        import numpy as np

        n = min(n_examples, len(dataset))
        if n == 0:
            raise ValueError("the held-out text gives no example")
        idx = np.sort(np.random.default_rng(seed).choice(len(dataset), n, replace=False))
        if hasattr(collate, "set_seed"):
            collate.set_seed(seed)  # fixed masks: every evaluation scores the same positions
        batches = [collate([dataset[int(i)] for i in idx[k:k + batch_size]]) for k in range(0, n, batch_size)]
        c = np.asarray(counts, dtype=np.float64).copy()
        c[list(special_ids)] = -1  # [CLS] / [SEP] are never masked: not an answer
        return cls(batches, int(c.argmax()))

    def __call__(self, model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        n_tok = n_seq = 0
        loss_sum = correct = nsp_correct = 0.0
        for batch in self.batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            out = model(batch)
            n = int((batch["labels"] != IGNORE_INDEX).sum())
            n_tok += n
            loss_sum += float(out["mlm_loss"]) * n  # the batch mean times its count: exact token mean
            correct += float(out["mlm_accuracy"]) * n
            if "nsp_accuracy" in out:
                bsz = batch["input_ids"].shape[0]
                nsp_correct += float(out["nsp_accuracy"]) * bsz
                n_seq += bsz
        result = {"mlm_loss": loss_sum / n_tok, "mlm_accuracy": correct / n_tok,
                  "unigram_accuracy": self.unigram_accuracy, "masked_tokens": float(n_tok)}
        if n_seq:
            result["nsp_accuracy"] = nsp_correct / n_seq
        return result
