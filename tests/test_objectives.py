"""Pretraining objectives (objectives/pretraining.py) on random hidden states and a tiny encoder."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from transferlm.objectives.masking import IGNORE_INDEX
from transferlm.objectives.pretraining import (CausalLMModel, MLMHead, NSPHead, PretrainingHeads, PretrainingModel,
                                               SpanBoundaryHead, causal_lm_loss, softmax_cross_entropy, tied_linear)

B, T, C, V = 3, 7, 16, 50


@pytest.fixture
def hidden():
    return torch.randn(B, T, C, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def labels():
    lab = torch.full((B, T), IGNORE_INDEX)
    lab[0, 2], lab[0, 5], lab[1, 1], lab[2, 3], lab[2, 4] = 7, 11, 3, 49, 0
    return lab


def test_mlm_logits_at_chosen_positions_equal_full_logits_gathered(hidden, labels):
    torch.manual_seed(0)
    emb = nn.Embedding(V, C)
    head = MLMHead(C, V, emb.weight)
    nn.init.normal_(head.bias)
    logits, targets = head.logits_at(hidden, labels)
    full = head(hidden)  # (B, T, V): what a head without the trick computes
    chosen = labels != IGNORE_INDEX
    assert logits.shape == (5, V)
    torch.testing.assert_close(logits, full[chosen])
    assert targets.tolist() == [7, 11, 3, 49, 0]
    # the decoder is the embedding matrix (tied) and the bias is HF's cls.predictions.bias
    assert head.decoder.weight is emb.weight and head.decoder.bias is head.bias


def test_mlm_loss_by_hand(hidden, labels):
    head = MLMHead(C, V)
    logits, targets = head.logits_at(hidden, labels)
    x = hidden[labels != IGNORE_INDEX]
    h = F.layer_norm(0.5 * (x @ head.transform.dense.weight.T + head.transform.dense.bias) *
                     (1 + torch.erf((x @ head.transform.dense.weight.T + head.transform.dense.bias) / 2 ** 0.5)),
                     (C,), head.transform.LayerNorm.weight, head.transform.LayerNorm.bias, 1e-12)
    by_hand_logits = h @ head.decoder.weight.T + head.bias
    torch.testing.assert_close(logits, by_hand_logits)
    logp = by_hand_logits.log_softmax(-1)
    expected = -sum(logp[i, t] for i, t in enumerate(targets.tolist())) / len(targets)
    torch.testing.assert_close(MLMHead.loss(logits, targets), expected)
    # equal to the full-logit loss with ignore_index (what BertForMaskedLM computes)
    torch.testing.assert_close(MLMHead.loss(logits, targets),
                               F.cross_entropy(head(hidden).reshape(-1, V), labels.reshape(-1), ignore_index=-100))


def test_mlm_no_chosen_position_gives_zero_loss_with_a_graph(hidden):
    head = MLMHead(C, V)
    logits, targets = head.logits_at(hidden, torch.full((B, T), IGNORE_INDEX))
    loss = MLMHead.loss(logits, targets)
    assert loss.item() == 0.0 and loss.requires_grad


def test_heads_match_hugging_face_bert_heads(hidden):
    from transformers import BertConfig
    from transformers.models.bert.modeling_bert import BertPreTrainingHeads

    cfg = BertConfig(hidden_size=C, vocab_size=V, hidden_act="gelu", layer_norm_eps=1e-12)
    torch.manual_seed(1)
    hf = BertPreTrainingHeads(cfg)
    nn.init.normal_(hf.predictions.bias)
    hf.predictions.decoder.bias = hf.predictions.bias
    ours = PretrainingHeads(C, V, nn.Parameter(torch.empty(V, C)), nsp=True, layer_norm_eps=1e-12)
    ours.load_state_dict(hf.state_dict(), strict=True)  # same names, same shapes
    pooled = hidden[:, 0]
    hf_mlm, hf_nsp = hf(hidden, pooled)
    torch.testing.assert_close(ours.predictions(hidden), hf_mlm)
    torch.testing.assert_close(ours.seq_relationship(pooled), hf_nsp)
    names = set(ours.hf_state_dict())
    assert names == {"cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
                     "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
                     "cls.predictions.bias", "cls.seq_relationship.weight", "cls.seq_relationship.bias"}


def test_nsp_shape_and_loss():
    pooled = torch.randn(4, C, generator=torch.Generator().manual_seed(2))
    head = NSPHead(C)
    logits = head(pooled)
    assert logits.shape == (4, 2)
    y = torch.tensor([0, 1, 1, 0])
    expected = -(logits.log_softmax(-1)[torch.arange(4), y]).mean()
    torch.testing.assert_close(NSPHead.loss(logits, y), expected)


def test_sbo_shapes_and_hand_computation(hidden):
    torch.manual_seed(3)
    emb = nn.Embedding(V, C)
    head = SpanBoundaryHead(C, V, emb.weight, max_positions=8)
    labels = torch.full((B, T), IGNORE_INDEX)
    start, end = torch.zeros(B, T, dtype=torch.long), torch.zeros(B, T, dtype=torch.long)
    # row 0: span at positions 2..4; row 2: span at 1..1
    labels[0, 2:5] = torch.tensor([5, 6, 7])
    start[0, 2:5], end[0, 2:5] = 2, 4
    labels[2, 1] = 9
    start[2, 1], end[2, 1] = 1, 1
    logits, targets = head(hidden, labels, start, end)
    assert logits.shape == (4, V) and targets.tolist() == [5, 6, 7, 9]
    # by hand for the middle token of row 0: boundaries y_1 and y_5, relative position 1
    h0 = torch.cat([hidden[0, 1], hidden[0, 5], head.position_embeddings.weight[1]])
    h1 = F.layer_norm(F.gelu(head.mlp[0](h0)), (C,), head.mlp[2].weight, head.mlp[2].bias, 1e-12)
    y = F.layer_norm(F.gelu(head.mlp[3](h1)), (C,), head.mlp[5].weight, head.mlp[5].bias, 1e-12)
    torch.testing.assert_close(logits[1], y @ emb.weight.T + head.decoder.bias)
    torch.testing.assert_close(SpanBoundaryHead.loss(logits, targets), F.cross_entropy(logits, targets))
    bad = start.clone()
    bad[2, 1] = 0  # a span starting at position 0 has no left boundary
    with pytest.raises(ValueError, match="sequence edge"):
        head(hidden, labels, bad, end)


def test_causal_lm_loss_by_hand():
    logits = torch.randn(2, 4, V, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([[1, 2, 3, 4], [5, 6, IGNORE_INDEX, IGNORE_INDEX]])
    logp = logits.log_softmax(-1)
    terms = [logp[0, 0, 2], logp[0, 1, 3], logp[0, 2, 4], logp[1, 0, 6]]
    torch.testing.assert_close(causal_lm_loss(logits, labels), -sum(terms) / 4)


class TinyEncoder(nn.Module):
    """A stand-in with the Encoder contract: forward(ids, attention_mask, token_type_ids) ->
    last_hidden_state (B, T, C), pooler_output (B, C)."""

    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(V, C)
        self.type_embeddings = nn.Embedding(2, C)
        self.mix = nn.Linear(C, C)
        self.pool = nn.Linear(C, C)

    def get_input_embeddings(self):
        return self.word_embeddings

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        x = self.word_embeddings(input_ids)
        if token_type_ids is not None:
            x = x + self.type_embeddings(token_type_ids)
        h = torch.tanh(self.mix(x + x.mean(1, keepdim=True)))
        return SimpleNamespace(last_hidden_state=h, pooler_output=torch.tanh(self.pool(h[:, 0])))


def test_pretraining_model_components_and_total(labels):
    torch.manual_seed(5)
    ids = torch.randint(5, V, (B, T))
    batch = {"input_ids": ids, "attention_mask": torch.ones(B, T, dtype=torch.long),
             "token_type_ids": torch.zeros(B, T, dtype=torch.long), "labels": labels,
             "next_sentence_label": torch.tensor([0, 1, 0]),
             "span_start": torch.zeros(B, T, dtype=torch.long), "span_end": torch.zeros(B, T, dtype=torch.long)}
    for r, c_ in [(0, 2), (0, 5), (1, 1), (2, 3), (2, 4)]:
        batch["span_start"][r, c_] = batch["span_end"][r, c_] = c_
    bert = PretrainingModel(TinyEncoder(), C, V, nsp=True)
    out = bert(batch)
    assert set(out) == {"loss", "mlm_loss", "mlm_accuracy", "nsp_loss", "nsp_accuracy"}
    torch.testing.assert_close(out["loss"], out["mlm_loss"] + out["nsp_loss"])
    span = PretrainingModel(TinyEncoder(), C, V, nsp=False, sbo=True)
    out = span(batch)
    assert set(out) == {"loss", "mlm_loss", "mlm_accuracy", "sbo_loss"}
    torch.testing.assert_close(out["loss"], out["mlm_loss"] + out["sbo_loss"])
    out["loss"].backward()
    assert span.encoder.word_embeddings.weight.grad is not None
    assert span.cls.predictions.decoder.weight is span.encoder.word_embeddings.weight
    assert span.sbo.decoder.weight is span.encoder.word_embeddings.weight


def test_causal_lm_model():
    dec = nn.Sequential(nn.Embedding(V, C), nn.Linear(C, V))

    class Dec(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = dec

        def forward(self, input_ids, attention_mask=None):
            return SimpleNamespace(logits=self.net(input_ids))

    ids = torch.randint(0, V, (2, 6))
    out = CausalLMModel(Dec())({"input_ids": ids})
    torch.testing.assert_close(out["loss"], causal_lm_loss(dec(ids), ids))


def test_mlm_evaluator_weights_by_masked_tokens_and_scores_the_unigram_baseline():
    from transferlm.objectives.pretraining import MLMEvaluator

    class Fixed(nn.Module):
        """Answers token 5 everywhere; reports its accuracy and a loss as PretrainingModel does."""

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, batch):
            t = batch["labels"][batch["labels"] != IGNORE_INDEX]
            return {"mlm_loss": torch.tensor(float(len(t))), "mlm_accuracy": (t == 5).float().mean()}

    b1 = {"labels": torch.tensor([[5, -100, 7], [-100, 5, -100]])}  # 3 chosen: 2 right
    b2 = {"labels": torch.tensor([[9, -100, -100]])}  # 1 chosen: 0 right
    counts = torch.zeros(12)
    counts[[1, 2, 9]] = torch.tensor([100.0, 90.0, 10.0])  # 1 and 2 are special: the baseline answers 9
    ev = MLMEvaluator.from_dataset([b1["labels"], b2["labels"]], lambda xs: {"labels": torch.stack(xs)},
                                   n_examples=2, batch_size=1, seed=0, counts=counts.numpy(), special_ids=[1, 2])
    assert ev.baseline_token == 9
    r = MLMEvaluator([b1, b2], baseline_token=9)(Fixed())
    assert r["mlm_accuracy"] == pytest.approx(2 / 4)  # token-weighted, not the mean of 2/3 and 0
    assert r["mlm_loss"] == pytest.approx((3 * 3 + 1 * 1) / 4)
    assert r["unigram_accuracy"] == pytest.approx(1 / 4) and r["masked_tokens"] == 4
    with pytest.raises(ValueError, match="no masked position"):
        MLMEvaluator([{"labels": torch.full((1, 3), IGNORE_INDEX)}], 0)


@pytest.mark.parametrize("scale", [1.0, 40.0, 2000.0])
def test_softmax_cross_entropy_equals_torch_loss_gradient_and_argmax_accuracy(scale):
    # the one-softmax loss of the MLM head against F.cross_entropy (value and gradient) and argmax
    # accuracy, from ordinary logits to ones so spread that a naive softmax underflows
    g = torch.Generator().manual_seed(1)
    z = torch.randn(40, 300, generator=g) * scale
    t = torch.randint(0, 300, (40,), generator=g)
    t[:13] = z[:13].argmax(-1)  # 13 of 40 rows right
    ours = z.clone().requires_grad_()
    loss, acc = softmax_cross_entropy(ours, t)
    (3.0 * loss).backward()
    ref = z.clone().requires_grad_()
    ref_loss = F.cross_entropy(ref, t)
    (3.0 * ref_loss).backward()
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(ours.grad, ref.grad)
    assert acc.item() == pytest.approx(13 / 40) == (z.argmax(-1) == t).float().mean().item()
    assert not acc.requires_grad


def test_softmax_cross_entropy_bf16_logits_and_empty_rows():
    z = torch.randn(8, 50, generator=torch.Generator().manual_seed(2)).bfloat16().requires_grad_()
    t = torch.arange(8)
    loss, _ = softmax_cross_entropy(z, t)
    loss.backward()
    torch.testing.assert_close(loss, F.cross_entropy(z.detach().float(), t))  # fp32 arithmetic
    assert z.grad.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="at least one row"):
        softmax_cross_entropy(z, t[:0])


def test_pretraining_model_mlm_loss_and_accuracy_match_the_reference(labels):
    torch.manual_seed(6)
    batch = {"input_ids": torch.randint(5, V, (B, T)), "attention_mask": torch.ones(B, T, dtype=torch.long),
             "labels": labels}
    model = PretrainingModel(TinyEncoder(), C, V, nsp=False)
    out = model(batch)
    logits, targets = model.cls.predictions.logits_at(model.encoder(batch["input_ids"]).last_hidden_state, labels)
    torch.testing.assert_close(out["mlm_loss"], F.cross_entropy(logits, targets))
    assert out["mlm_accuracy"].item() == (logits.argmax(-1) == targets).float().mean().item()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_tied_linear_equals_f_linear_with_a_tied_embedding(precision):
    # the MLM decoder tied to the word embeddings: same logits and the same summed gradients as
    # F.linear, with the weight gradient laid out as the weight (added in place, not out of place)
    g = torch.Generator().manual_seed(3)
    ids, rows = torch.randint(0, V, (4, 6), generator=g), torch.randn(9, C, generator=g)
    grads = {}
    for name, fn in (("ours", tied_linear), ("ref", F.linear)):
        torch.manual_seed(0)
        emb, bias = nn.Embedding(V, C), nn.Parameter(torch.randn(V) * 0.1)
        x = rows.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            h = emb(ids).sum((0, 1)) + x  # (9, C): the embedding lookup feeds the rows
            out = fn(h, emb.weight, bias)  # (9, V)
        (out.float() ** 2).mean().backward()
        grads[name] = (out, emb.weight.grad, bias.grad, x.grad)
    ours, ref = grads["ours"], grads["ref"]
    assert ours[0].dtype == ref[0].dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    tol = {} if precision == "fp32" else {"rtol": 2e-2, "atol": 2e-3}
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.float(), b.float(), **tol)
    assert ours[1].dtype == ours[2].dtype == torch.float32 and ours[1].is_contiguous()
