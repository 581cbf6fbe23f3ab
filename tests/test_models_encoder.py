"""Encoder (BERT family): parity with transformers' BertModel on MiniLM and tiny random configs,
HF folders in and out, and clear errors for checkpoints that do not fit."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from transferlm.data import assets
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

from transferlm.models import CheckpointError, Encoder, ModelConfig, preset
from transferlm.models.layers import sinusoidal_table


@pytest.fixture(scope="module")
def minilm():
    folder = assets.path("minilm")
    ours = Encoder.from_pretrained(folder)
    ref = BertModel.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    return ours, ref, tok


def _real_sentences(n: int = 6) -> list[str]:
    """PTB validation lines of clearly different lengths (3 to ~60 tokens)."""
    lines = [line.strip() for line in assets.ptb_text("valid").splitlines() if line.strip()]
    by_len = sorted(lines[:400], key=len)
    step = len(by_len) // (n - 1)
    return [by_len[min(i * step, len(by_len) - 1)] for i in range(n)]


def test_minilm_every_layer_and_pooler_match_transformers(minilm):
    ours, ref, tok = minilm
    sents = _real_sentences()
    batch = tok(sents, padding=True, return_tensors="pt")
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() > 3 * lengths.min()  # really a padded batch of varied lengths
    with torch.no_grad():
        got = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], output_hidden_states=True)
        want = ref(**batch, output_hidden_states=True)
    real = batch["attention_mask"].bool()
    assert len(got.hidden_states) == len(want.hidden_states) == 7
    for layer, (a, b) in enumerate(zip(got.hidden_states, want.hidden_states)):
        torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0, msg=f"layer {layer}")
    torch.testing.assert_close(got.last_hidden_state[real], want.last_hidden_state[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=1e-5, rtol=0)


def test_padding_columns_do_not_change_results(minilm):
    ours, _, tok = minilm
    sents = _real_sentences(3)
    tight = tok(sents, padding=True, return_tensors="pt")
    loose = tok(sents, padding="max_length", max_length=tight["input_ids"].shape[1] + 17, return_tensors="pt")
    with torch.no_grad():
        a = ours(tight["input_ids"], tight["attention_mask"])
        b = ours(loose["input_ids"], loose["attention_mask"])
    T = tight["input_ids"].shape[1]
    real = tight["attention_mask"].bool()
    assert b.last_hidden_state.shape[1] == T + 17
    torch.testing.assert_close(a.last_hidden_state[real], b.last_hidden_state[:, :T][real], atol=1e-6, rtol=0)
    torch.testing.assert_close(a.pooler_output, b.pooler_output, atol=1e-6, rtol=0)
    # one sentence alone (no mask at all: the SDPA fast path) equals its padded row
    one = tok(sents[:1], return_tensors="pt")
    with torch.no_grad():
        c = ours(one["input_ids"])
    n = one["input_ids"].shape[1]
    torch.testing.assert_close(c.last_hidden_state[0], a.last_hidden_state[0, :n], atol=1e-5, rtol=0)


def _tiny_bert(**kw) -> BertConfig:
    args = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                max_position_embeddings=64, type_vocab_size=2)
    args.update(kw)
    return BertConfig(**args)


def _batch(vocab: int, B: int = 3, T: int = 11, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    types = torch.zeros(B, T, dtype=torch.long)
    types[:, 5:] = 1
    return ids, mask, types


def test_their_save_our_load_and_our_save_their_load(tmp_path):
    torch.manual_seed(0)
    ref = BertModel(_tiny_bert()).eval()
    ref.save_pretrained(tmp_path / "theirs")
    ours = Encoder.from_pretrained(tmp_path / "theirs")
    ids, mask, types = _batch(99)
    real = mask.bool()
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, token_type_ids=types)
        got = ours(ids, mask, types)
    torch.testing.assert_close(got.last_hidden_state[real], want.last_hidden_state[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=1e-5, rtol=0)

    # our random model, saved by us, loaded by AutoModel with nothing missing or unexpected
    fresh = Encoder(ModelConfig.from_hf_dict(_tiny_bert().to_dict())).eval()
    fresh.save_pretrained(tmp_path / "ours")
    back, info = AutoModel.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert isinstance(back, BertModel)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    with torch.no_grad():
        want = back.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types)
        got = fresh(ids, mask, types)
    torch.testing.assert_close(got.last_hidden_state[real], want.last_hidden_state[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=1e-5, rtol=0)


def test_save_with_mlm_head_loads_as_bert_for_masked_lm(tmp_path):
    torch.manual_seed(1)
    enc = Encoder(ModelConfig.from_hf_dict(_tiny_bert().to_dict())).eval()
    C, V = 32, 99
    head = {"cls.predictions.transform.dense.weight": torch.randn(C, C) * 0.1,
            "cls.predictions.transform.dense.bias": torch.randn(C) * 0.1,
            "cls.predictions.transform.LayerNorm.weight": 1 + torch.randn(C) * 0.1,
            "cls.predictions.transform.LayerNorm.bias": torch.randn(C) * 0.1,
            "cls.predictions.bias": torch.randn(V) * 0.1}
    enc.save_pretrained(tmp_path / "mlm", extra_tensors=head, architectures=["BertForMaskedLM"])
    assert json.loads((tmp_path / "mlm" / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    mlm, info = BertForMaskedLM.from_pretrained(tmp_path / "mlm", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids, mask, types = _batch(V)
    with torch.no_grad():
        h = enc(ids, mask, types).last_hidden_state
        t = torch.nn.functional.gelu(h @ head["cls.predictions.transform.dense.weight"].T
                                     + head["cls.predictions.transform.dense.bias"])
        t = torch.nn.functional.layer_norm(t, (C,), head["cls.predictions.transform.LayerNorm.weight"],
                                           head["cls.predictions.transform.LayerNorm.bias"], eps=1e-12)
        mine = t @ enc.get_input_embeddings().weight.T + head["cls.predictions.bias"]
        theirs = mlm.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    real = mask.bool()
    torch.testing.assert_close(mine[real], theirs[real], atol=1e-5, rtol=0)
    # and our Encoder reads the BertForMaskedLM folder back (bert. prefix, no pooler)
    again = Encoder.from_pretrained(tmp_path / "mlm")
    assert again.pooler is None
    torch.testing.assert_close(again(ids, mask, types).last_hidden_state[real], h[real], atol=0, rtol=0)


def test_pytorch_model_bin_is_read_with_weights_only(tmp_path):
    torch.manual_seed(2)
    ref = BertModel(_tiny_bert()).eval()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text(ref.config.to_json_string())
    torch.save(ref.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    ours = Encoder.from_pretrained(tmp_path / "bin")
    ids, mask, types = _batch(99)
    with torch.no_grad():
        torch.testing.assert_close(ours(ids, mask, types).pooler_output,
                                   ref(input_ids=ids, attention_mask=mask, token_type_ids=types).pooler_output,
                                   atol=1e-5, rtol=0)


@pytest.fixture()
def saved_tiny(tmp_path):
    torch.manual_seed(3)
    BertModel(_tiny_bert()).save_pretrained(tmp_path)
    return tmp_path


def test_missing_tensor_is_named(saved_tiny):
    f = saved_tiny / "model.safetensors"
    tensors = load_file(str(f))
    del tensors["encoder.layer.1.attention.self.key.weight"]
    save_file(tensors, str(f))
    with pytest.raises(CheckpointError, match=r"missing tensor 'encoder\.layer\.1\.attention\.self\.key\.weight'"):
        Encoder.from_pretrained(saved_tiny)


def test_shape_mismatch_is_named(saved_tiny):
    f = saved_tiny / "model.safetensors"
    tensors = load_file(str(f))
    tensors["encoder.layer.0.intermediate.dense.weight"] = torch.zeros(36, 32)
    save_file(tensors, str(f))
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.0\.intermediate\.dense\.weight.*\(37, 32\)"):
        Encoder.from_pretrained(saved_tiny)


def test_unknown_model_type_and_bad_json_are_named(saved_tiny):
    cfg = json.loads((saved_tiny / "config.json").read_text())
    cfg["model_type"] = "roberta-xl"
    (saved_tiny / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config\.json: unsupported model_type 'roberta-xl'"):
        Encoder.from_pretrained(saved_tiny)
    (saved_tiny / "config.json").write_text('{"model_type": "bert",\n "hidden_size": }')
    with pytest.raises(ValueError, match=r"config\.json:2: invalid JSON"):
        Encoder.from_pretrained(saved_tiny)


def test_presets_follow_turc_et_al():
    for name, (L, H) in {"bert-tiny": (2, 128), "bert-mini": (4, 256), "bert-small": (4, 512),
                         "bert-medium": (8, 512), "bert-base": (12, 768)}.items():
        c = preset(name)
        shape = (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size, c.vocab_size)
        assert shape == (L, H, H // 64, 4 * H, 30522), name
    minilm = ModelConfig.from_hf_dict(json.loads((assets.path("minilm") / "config.json").read_text()))
    p = preset("minilm")
    assert (minilm.num_layers, minilm.hidden_size, minilm.num_heads, minilm.intermediate_size) == \
           (p.num_layers, p.hidden_size, p.num_heads, p.intermediate_size)
    with pytest.raises(KeyError, match="unknown model preset 'bert-huge'"):
        preset("bert-huge")
    enc = Encoder(preset("bert-tiny", vocab_size=50))
    assert sum(p.numel() for p in enc.parameters()) > 0
    out = enc(torch.randint(0, 50, (2, 5)), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 5, 128) and out.pooler_output.shape == (2, 128)
    assert len(out.hidden_states) == 3


def test_sinusoidal_positions_golden_values():
    t = sinusoidal_table(4, 6)
    assert torch.equal(t[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    # position 1: sin/cos(1 / 10000^(2i/6)) for i = 0, 1, 2
    import math
    want = []
    for i in range(3):
        w = 1 / 10000 ** (2 * i / 6)
        want += [math.sin(w), math.cos(w)]
    torch.testing.assert_close(t[1], torch.tensor(want), atol=1e-6, rtol=0)
    enc = Encoder(preset("bert-tiny", vocab_size=20, position_embedding="sinusoidal", num_layers=1)).eval()
    assert "embeddings.position_embeddings.weight" not in enc.state_dict()
    ids = torch.randint(0, 20, (1, 6))
    # positions matter: swapping two different tokens changes their outputs by more than the swap
    a = enc(ids).last_hidden_state
    b = enc(ids.flip(1)).last_hidden_state.flip(1)
    assert not torch.allclose(a, b, atol=1e-4)


def test_too_long_input_is_a_clear_error():
    enc = Encoder(preset("bert-tiny", vocab_size=20, max_position_embeddings=8))
    with pytest.raises(ValueError, match="only 8 positions"):
        enc(torch.zeros(1, 9, dtype=torch.long))


def test_training_attention_is_sdpa_arithmetic(monkeypatch):
    """The CPU training path (_dropout_attention) computes what SDPA computes: with the dropout
    made the identity, outputs and gradients agree, with and without a padding mask; with dropout
    on, about p of the probabilities are dropped and the rest scaled by 1/(1-p)."""
    from transferlm.models import layers

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 8, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    mask[1, ..., 4:] = False
    dropped = []

    def identity(x, p, training):
        dropped.append(p)
        return x

    monkeypatch.setattr(layers, "dropout", identity)
    for m in (None, mask):
        ours = layers._dropout_attention(q, k, v, m, 0.1)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
        for a, b in zip(torch.autograd.grad(ours.sum(), (q, k, v)), torch.autograd.grad(ref.sum(), (q, k, v))):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert dropped == [0.1, 0.1]
    monkeypatch.undo()
    # the encoder in training mode takes this path (dropout on, CPU) and is reproducible by seed
    cfg = preset("bert-tiny", vocab_size=50, add_pooler=False)
    enc = Encoder(cfg).train()
    ids = torch.randint(0, 50, (2, 9), generator=g)
    calls = []
    monkeypatch.setattr(layers, "_dropout_attention", lambda *a: calls.append(1) or
                        torch.nn.functional.scaled_dot_product_attention(*a[:3], attn_mask=a[3]))
    enc(ids)
    assert len(calls) == cfg.num_layers
    monkeypatch.undo()
    torch.manual_seed(1)
    a = enc(ids).last_hidden_state
    torch.manual_seed(1)
    torch.testing.assert_close(enc(ids).last_hidden_state, a)
    # with dropout on: the rate and the 1/(1-p) scale of what is kept
    probs_in = torch.full((1, 1, 200, 200), 0.0)
    vv = torch.eye(200)[None, None]  # probs @ I = probs: the output is the dropped probability matrix
    out = layers._dropout_attention(probs_in, probs_in, vv, None, 0.25)  # uniform attention: 1/200 each
    kept = out[out != 0]
    assert abs(1 - kept.numel() / out.numel() - 0.25) < 0.01
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 200 / 0.75))


def test_cpu_dropout_rate_scale_and_gradient():
    from transferlm.models.layers import Dropout

    d = Dropout(0.1)
    x = torch.ones(400, 500, requires_grad=True)
    torch.manual_seed(0)
    y = d(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.1) < 0.005  # dropped with probability p
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.9))  # kept ones scaled by 1/(1-p)
    (g,) = torch.autograd.grad((y * 3).sum(), x)
    torch.testing.assert_close(g, 3 * y.detach())  # the same mask in backward
    torch.manual_seed(0)
    torch.testing.assert_close(d(x), y)  # reproducible by seed
    assert d.eval()(x) is x and Dropout(0.0).train()(x) is x
