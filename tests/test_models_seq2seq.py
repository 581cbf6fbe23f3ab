"""Seq2Seq (BERT encoder + BERT decoder with cross-attention) against transformers'
EncoderDecoderModel, and greedy / beam decoding invariants."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

from transferlm.models import ModelConfig, Seq2Seq, preset

ENC_V, DEC_V, START, EOS, PAD = 99, 61, 1, 2, 0


def _hf_model(seed: int = 0) -> EncoderDecoderModel:
    torch.manual_seed(seed)
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    enc = BertConfig(vocab_size=ENC_V, **common)
    dec = BertConfig(vocab_size=DEC_V, is_decoder=True, add_cross_attention=True, **common)
    cfg = EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = START, PAD, EOS
    model = EncoderDecoderModel(config=cfg).eval()
    with torch.no_grad():  # move norms / biases off their 1 / 0 init so every tensor matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    ref = _hf_model()
    folder = tmp_path_factory.mktemp("bert2bert")
    ref.save_pretrained(folder)
    return ref, Seq2Seq.from_pretrained(folder)


def _source(B=3, S=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, ENC_V, (B, S), generator=g)
    mask = torch.ones(B, S, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids, mask


def _target(B=3, T=7, seed=2):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, DEC_V, (B, T), generator=g)
    ids[:, 0] = START
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, 5:] = 0
    return ids, mask


def test_teacher_forced_logits_match_encoder_decoder_model(pair):
    ref, ours = pair
    src, src_mask = _source()
    tgt, tgt_mask = _target()
    with torch.no_grad():
        want = ref(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
        got = ours(src, src_mask, tgt, tgt_mask)
    real = tgt_mask.bool()
    torch.testing.assert_close(got.logits[real], want.logits[real], atol=1e-5, rtol=0)
    enc_real = src_mask.bool()
    torch.testing.assert_close(got.encoder_last_hidden_state[enc_real], want.encoder_last_hidden_state[enc_real],
                               atol=1e-5, rtol=0)


def test_our_save_loads_in_transformers(pair, tmp_path):
    _, ours = pair
    ours.save_pretrained(tmp_path)
    back, info = EncoderDecoderModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    src, src_mask = _source(seed=5)
    tgt, tgt_mask = _target(seed=6)
    with torch.no_grad():
        want = back.eval()(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt,
                           decoder_attention_mask=tgt_mask).logits
        got = ours(src, src_mask, tgt, tgt_mask).logits
    real = tgt_mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=0)


def test_greedy_matches_transformers_generate(pair):
    ref, ours = pair
    src, src_mask = _source()
    got = ours.generate(src, src_mask, max_new_tokens=12, eos_token_id=EOS)
    want = ref.generate(input_ids=src, attention_mask=src_mask, max_new_tokens=12, do_sample=False, num_beams=1,
                        decoder_start_token_id=START, eos_token_id=EOS, pad_token_id=PAD)
    assert got.tolist() == want.tolist()


def test_beam_search_matches_transformers_without_eos(pair):
    # With no end token every hypothesis has the same length, so the length penalty cannot
    # reorder them and both implementations keep the top-K partial sequences at each step.
    ref, ours = pair
    src, src_mask = _source(seed=7)
    got = ours.generate(src, src_mask, max_new_tokens=6, num_beams=3)
    want = ref.generate(input_ids=src, attention_mask=src_mask, max_new_tokens=6, do_sample=False, num_beams=3,
                        decoder_start_token_id=START, eos_token_id=None, pad_token_id=PAD)
    assert got.tolist() == want.tolist()


def test_cached_greedy_equals_recomputation(pair):
    _, ours = pair
    src, src_mask = _source(seed=8)
    got = ours.generate(src, src_mask, max_new_tokens=8)
    seq = torch.full((src.shape[0], 1), START)
    with torch.no_grad():
        for _ in range(8):
            nxt = ours(src, src_mask, seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(got, seq)


def test_beam_one_is_greedy(pair):
    _, ours = pair
    src, src_mask = _source(seed=9)
    # pick as "eos" a token the greedy decoder really produces, so stopping is exercised
    free = ours.generate(src, src_mask, max_new_tokens=10)
    eos = int(free[0, 3])
    greedy = ours.generate(src, src_mask, max_new_tokens=10, eos_token_id=eos)
    beam = ours.generate(src, src_mask, max_new_tokens=10, num_beams=1 + 0, eos_token_id=eos)
    assert torch.equal(greedy, beam)
    # the beam code path itself with one beam (bypassing the greedy shortcut)
    memory = ours.encode(src, src_mask)
    with torch.no_grad():
        beam_path = ours._beam(memory, src_mask, 10, 1, START, eos, PAD, 1.0)
    assert beam_path.tolist() == [row[: beam_path.shape[1]] for row in greedy.tolist()]
    assert eos in greedy[0].tolist()


def test_wide_beam_finds_the_best_sequence_by_brute_force():
    torch.manual_seed(3)
    V, n = 5, 3
    enc = preset("bert-tiny", vocab_size=11, num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32)
    dec = enc.replace(vocab_size=V)
    model = Seq2Seq(enc, dec, decoder_start_token_id=0).eval()
    src = torch.randint(0, 11, (1, 6))
    with torch.no_grad():
        best, best_score = None, float("-inf")
        for cont in itertools.product(range(V), repeat=n):
            seq = torch.tensor([[0, *cont]])
            logp = model(src, None, seq[:, :-1]).logits.log_softmax(-1)
            score = logp[0, torch.arange(n), seq[0, 1:]].sum().item()
            if score > best_score:
                best, best_score = list(cont), score
    out = model.generate(src, max_new_tokens=n, num_beams=V ** (n - 1))  # wide enough to be exhaustive
    assert out[0, 1:].tolist() == best
    narrow = model.generate(src, max_new_tokens=n, num_beams=2)
    assert narrow.shape == (1, n + 1)


def test_mismatched_widths_are_refused():
    enc = preset("bert-tiny", vocab_size=11)
    with pytest.raises(ValueError, match="hidden_size 128 != decoder hidden_size 256"):
        Seq2Seq(enc, preset("bert-mini", vocab_size=11))
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        Seq2Seq(enc, enc).generate(torch.ones(1, 3, dtype=torch.long), max_new_tokens=2)


def test_config_dict_of_a_decoder_half():
    d = ModelConfig.from_hf_dict(BertConfig(is_decoder=True, add_cross_attention=True).to_dict())
    assert d.causal and d.add_cross_attention and d.model_type == "bert"
