"""Decoder (GPT-2, Llama): SmolLM2 from GGUF against transformers, tiny random configs against
GPT2LMHeadModel / LlamaForCausalLM both ways, KV cache == recomputation, generation options."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from transferlm.data import assets
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from transferlm.models import CheckpointError, KVCache, ModelConfig, preset
from transferlm.models.checkpoint import gguf_unpermute
from transferlm.models.decoder import Decoder, next_token


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Token-by-token decoding is many small matmuls; on a shared, oversubscribed CPU two intra-op
    threads make each one ~50x slower (each waits for a descheduled partner). Restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- SmolLM2 (the real GGUF asset) ---------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2(one_thread):
    g = assets.path("smollm2")
    ours = Decoder.from_pretrained(g)
    ref = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    return ours, ref, tok


PROMPT = "The Penn Treebank is a corpus of English text. Its most famous part comes from"


def test_smollm2_gguf_logits_match_transformers(smollm2):
    ours, ref, tok = smollm2
    c = ours.config
    assert (c.num_layers, c.hidden_size, c.num_heads, c.kv_heads) == (30, 576, 9, 3)
    assert ours.config.tie_word_embeddings and ours.config.rope_theta == 100000.0
    ids = tok(PROMPT, return_tensors="pt").input_ids
    assert ids.shape[1] > 10
    with torch.no_grad():
        got, want = ours(ids).logits, ref(ids).logits
    torch.testing.assert_close(got, want, atol=1e-3, rtol=0)


def test_smollm2_greedy_continuation_matches_transformers(smollm2):
    """Our cached greedy decoding gives the continuation transformers' greedy decoding gives.

    Checked in one teacher-forced pass of the reference over prompt + our 32 tokens: each of our
    tokens is the reference's argmax given the same prefix, which is exactly what its greedy
    `generate` would pick, step by step (a 32-step reference `generate` costs ~30x more time).
    """
    ours, ref, tok = smollm2
    ids = tok(PROMPT, return_tensors="pt").input_ids
    P = ids.shape[1]
    got = ours.generate(ids, max_new_tokens=32)
    assert got.shape == (1, P + 32) and torch.equal(got[:, :P], ids)
    with torch.no_grad():
        ref_logits = ref(got).logits[0, P - 1:-1]  # (32, V): the prediction for each new token
    assert got[0, P:].tolist() == ref_logits.argmax(-1).tolist(), tok.decode(got[0])
    # and the choices are not near-ties that float noise could flip
    top2 = ref_logits.topk(2, dim=-1).values
    assert (top2[:, 0] - top2[:, 1]).min() > 1e-3


def test_gguf_unpermute_inverts_llama_cpp_permute():
    # llama.cpp convert_hf_to_gguf.py LlamaModel.permute, written out here independently
    def permute(w, n_head):
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    w = torch.arange(3 * 8 * 5, dtype=torch.float32).reshape(24, 5)
    assert not torch.equal(permute(w, 3), w)
    assert torch.equal(gguf_unpermute(permute(w, 3), 3), w)


# ---- tiny random GPT-2 and Llama -------------------------------------------------------------------
def _gpt2(**kw):
    args = dict(vocab_size=101, n_positions=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0, embd_pdrop=0,
                attn_pdrop=0)
    args.update(kw)
    return GPT2LMHeadModel(GPT2Config(**args)).eval()


def _llama(**kw):
    args = dict(vocab_size=103, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
                num_key_value_heads=2, max_position_embeddings=128, rope_theta=5000.0, rms_norm_eps=1e-5,
                tie_word_embeddings=False)
    args.update(kw)
    return LlamaForCausalLM(LlamaConfig(**args)).eval()


def _randomise(model):
    # HF inits norms to 1 and biases to 0; random values make the parity test see every tensor
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _ids(vocab, B=2, T=9, seed=0):
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


REFS = {
    "gpt2": lambda: _gpt2(),
    "gpt2-untied": lambda: _gpt2(tie_word_embeddings=False),
    "llama-gqa": lambda: _llama(),
    "llama-tied-bias": lambda: _llama(tie_word_embeddings=True, attention_bias=True, num_key_value_heads=6),
}


@pytest.mark.parametrize("name", sorted(REFS))
def test_their_save_our_load_and_back(name, tmp_path):
    torch.manual_seed(0)
    ref = _randomise(REFS[name]())
    ref.save_pretrained(tmp_path / "theirs")
    ours = Decoder.from_pretrained(tmp_path / "theirs")
    ids = _ids(ref.config.vocab_size)
    with torch.no_grad():
        want = ref(ids, output_hidden_states=True)
        got = ours(ids, output_hidden_states=True)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=0)
    assert len(got.hidden_states) == len(want.hidden_states) == 3
    for a, b in zip(got.hidden_states, want.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    ours.save_pretrained(tmp_path / "ours")
    back, info = AutoModelForCausalLM.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert type(back) is type(ref)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    with torch.no_grad():
        torch.testing.assert_close(back.eval()(ids).logits, want.logits, atol=1e-5, rtol=0)


def test_right_padded_batch_matches_transformers(tmp_path):
    ref = _randomise(_llama())
    ref.save_pretrained(tmp_path)
    ours = Decoder.from_pretrained(tmp_path)
    ids = _ids(103, B=3, T=10)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    with torch.no_grad():
        got, want = ours(ids, attention_mask=mask).logits, ref(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=0)


# ---- KV cache and generation --------------------------------------------------------------------
@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny(request):
    torch.manual_seed(4)
    cfg = preset("gpt-mini", vocab_size=97, num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64,
                 max_position_embeddings=64, hidden_dropout=0.0, attention_dropout=0.0)
    if request.param == "llama":
        cfg = preset("smollm2", vocab_size=97, num_layers=2, hidden_size=36, num_heads=6, num_kv_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    return Decoder(cfg).eval()


def _greedy_by_recomputation(model, ids, n):
    for _ in range(n):
        logits = model(ids).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids


def test_cached_logits_equal_full_recomputation(tiny):
    ids = _ids(97, B=2, T=12, seed=5)
    with torch.no_grad():
        full = tiny(ids).logits
        cache = KVCache()
        first = tiny(ids[:, :5], use_cache=True, past_key_values=cache)
        assert cache.seq_length() == 5 and len(cache) == 2
        chunk = tiny(ids[:, 5:9], past_key_values=cache).logits  # several new tokens at once
        steps = [tiny(ids[:, t:t + 1], past_key_values=cache).logits for t in range(9, 12)]
    got = torch.cat([first.logits, chunk, *steps], dim=1)
    torch.testing.assert_close(got, full, atol=1e-5, rtol=0)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 11), max_size=4, unique=True))
def test_any_chunking_of_the_cache_gives_the_same_logits(tiny, cuts):
    ids = _ids(97, B=2, T=12, seed=11)
    bounds = [0, *sorted(cuts), 12]
    cache = KVCache()
    with torch.no_grad():
        full = tiny(ids).logits
        parts = [tiny(ids[:, a:b], past_key_values=cache).logits for a, b in zip(bounds, bounds[1:])]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)


def test_generate_with_cache_equals_recomputation(tiny):
    ids = _ids(97, B=2, T=4, seed=6)
    with torch.no_grad():
        want = _greedy_by_recomputation(tiny, ids, 10)
    assert torch.equal(tiny.generate(ids, max_new_tokens=10), want)


def test_left_padded_batch_generates_like_each_prompt_alone(tiny):
    a, b = _ids(97, B=1, T=7, seed=7), _ids(97, B=1, T=3, seed=8)
    batch = torch.cat([a, torch.cat([torch.zeros(1, 4, dtype=torch.long), b], dim=1)])
    mask = torch.ones_like(batch)
    mask[1, :4] = 0
    out = tiny.generate(batch, max_new_tokens=6, attention_mask=mask)
    assert torch.equal(out[0], tiny.generate(a, max_new_tokens=6)[0])
    assert torch.equal(out[1, 4:], tiny.generate(b, max_new_tokens=6)[0])


def test_decode_batch_joins_and_leaves_like_each_prompt_alone(tiny):
    """Continuous batching: prompts of lengths 7, 3, 11, 5 join a running batch at steps 0, 2, 3
    and 6, each decodes its own number of tokens and leaves; logits match each prompt run alone
    (`stream`) at every step, and the greedy tokens are the same."""
    from transferlm.models.decoder import DecodeBatch

    prompts = [_ids(97, B=1, T=T, seed=20 + T)[0].tolist() for T in (7, 3, 11, 5)]
    joins, lengths = [0, 2, 3, 6], [9, 4, 6, 5]
    alone = [tiny.generate(torch.tensor([p]), max_new_tokens=n)[0, len(p):].tolist()
             for p, n in zip(prompts, lengths)]
    batch = DecodeBatch(tiny)
    rows: list[int] = []  # which prompt each batch row decodes
    got: list[list[int]] = [[] for _ in prompts]
    widths = []
    step = 0
    with torch.no_grad():
        while step == 0 or rows:
            for i, at in enumerate(joins):
                if at == step:
                    logits, cache = batch.prefill(prompts[i])
                    ref = tiny(torch.tensor([prompts[i]])).logits[0, -1]
                    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
                    got[i].append(int(logits.argmax()))
                    assert batch.join(cache) == len(rows)
                    rows.append(i)
            done = [r for r, i in enumerate(rows) if len(got[i]) == lengths[i]]
            batch.leave(done)
            rows = [i for r, i in enumerate(rows) if r not in done]
            if rows:
                logits = batch.step(torch.tensor([got[i][-1] for i in rows]))  # (B, V)
                for r, i in enumerate(rows):
                    full = tiny(torch.tensor([prompts[i] + got[i]])).logits[0, -1]  # alone, recomputed
                    torch.testing.assert_close(logits[r], full, atol=1e-5, rtol=0)
                    got[i].append(int(logits[r].argmax()))
                widths.append(batch.width)
            step += 1
    assert got == alone
    assert max(widths) >= 11 + 3  # the longest prompt padded the others ...
    assert any(b < a for a, b in zip(widths, widths[1:]))  # ... its padding went when it left ...
    assert len(batch) == 0 and batch.width == 0  # ... and everyone left


def test_stop_tokens_end_rows_and_pad_them(tiny):
    ids = _ids(97, B=2, T=4, seed=9)
    free = tiny.generate(ids, max_new_tokens=8)
    stop = int(free[0, 4 + 2])  # the third token row 0 produces
    out = tiny.generate(ids, max_new_tokens=8, stop_token_ids=[stop], pad_token_id=96)
    row0 = out[0, 4:].tolist()
    first = row0.index(stop)
    assert first <= 2 and all(t == 96 for t in row0[first + 1:])
    if stop not in free[1, 4:].tolist():  # row 1 never stops, so it runs to max_new_tokens
        assert out.shape[1] == 12 and torch.equal(out[1], free[1])


def test_sampling_options():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0]]).repeat(4000, 1)
    assert torch.equal(next_token(logits), torch.zeros(4000, dtype=torch.long))
    assert torch.equal(next_token(logits, do_sample=True, top_k=1, generator=g), torch.zeros(4000, dtype=torch.long))
    zeros = torch.zeros(4000, dtype=torch.long)
    assert torch.equal(next_token(logits, do_sample=True, temperature=0.0, generator=g), zeros)
    top2 = next_token(logits, do_sample=True, top_k=2, generator=g)
    assert set(top2.tolist()) == {0, 1}
    # nucleus: p(0) = 0.55, p(1) = 0.20 ... top_p = 0.6 keeps tokens 0 and 1 only
    probs = logits[0].softmax(-1)
    assert probs[0] < 0.6 < probs[0] + probs[1]
    nucleus = next_token(logits, do_sample=True, top_p=0.6, generator=g)
    assert set(nucleus.tolist()) == {0, 1}
    frac = (nucleus == 0).float().mean().item()
    assert abs(frac - probs[0] / (probs[0] + probs[1])) < 0.05  # renormalised over the nucleus
    hot = next_token(logits, do_sample=True, temperature=100.0, generator=g)
    assert len(set(hot.tolist())) == 5  # high temperature: near uniform over all 5
    with pytest.raises(ValueError, match="top_p"):
        Decoder(preset("gpt-mini", num_layers=1, vocab_size=11)).generate(torch.zeros(1, 1, dtype=torch.long), 2,
                                                                          do_sample=True, top_p=1.5)


def test_sampled_generation_is_reproducible_with_a_generator(tiny):
    ids = _ids(97, B=2, T=3, seed=10)
    a = tiny.generate(ids, 8, do_sample=True, top_k=20, top_p=0.9, generator=torch.Generator().manual_seed(1))
    b = tiny.generate(ids, 8, do_sample=True, top_k=20, top_p=0.9, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (2, 11)


# ---- errors -----------------------------------------------------------------------------------------
def test_missing_tensor_and_unknown_type_are_named(tmp_path):
    _gpt2().save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(32, 100)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"transformer\.h\.1\.mlp\.c_fc\.weight \(32, 100\)"):
        Decoder.from_pretrained(tmp_path)
    del tensors["transformer.h.1.mlp.c_fc.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing tensor 'transformer\.h\.1\.mlp\.c_fc\.weight'"):
        Decoder.from_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_type"] = "mamba"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unsupported model_type 'mamba'"):
        Decoder.from_pretrained(tmp_path)


def test_untied_decoder_without_lm_head_is_refused(tmp_path):
    ref = _llama()
    ref.save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    del tensors["lm_head.weight"]
    save_file(tensors, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing tensor 'lm_head.weight'"):
        Decoder.from_pretrained(tmp_path)


def test_config_round_trip_through_hf_dicts():
    for cfg in (preset("gpt-mini"), preset("smollm2"), preset("bert-base")):
        again = ModelConfig.from_hf_dict(cfg.to_hf_dict())
        for f in ("vocab_size", "hidden_size", "num_layers", "num_heads", "kv_heads", "intermediate_size",
                  "rope_theta", "norm", "pre_norm", "activation", "gated_mlp", "tie_word_embeddings",
                  "max_position_embeddings", "norm_eps"):
            assert getattr(again, f) == getattr(cfg, f), (cfg.model_type, f)
