"""checkpoint.py: the key map, folders in and out, atomic writes, GGUF, and `transferlm generate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

from transferlm.cli import main
from transferlm.models import CheckpointError, Decoder, Encoder, Seq2Seq, preset
from transferlm.models import checkpoint as ckpt


def _models():
    torch.manual_seed(0)
    bert = preset("bert-tiny", vocab_size=50, num_layers=2, hidden_size=32, num_heads=4, intermediate_size=40)
    return {
        "bert-encoder": Encoder(bert),
        "bert-decoder": Decoder(bert.replace(is_decoder=True, add_cross_attention=True)),
        "gpt2": Decoder(preset("gpt-mini", vocab_size=50, num_layers=2, hidden_size=32, num_heads=4,
                               intermediate_size=40)),
        "gpt2-untied": Decoder(preset("gpt-mini", vocab_size=50, num_layers=1, hidden_size=32, num_heads=4,
                                      intermediate_size=40, tie_word_embeddings=False)),
        "llama": Decoder(preset("smollm2", vocab_size=50, num_layers=2, hidden_size=48, num_heads=6, num_kv_heads=2,
                                intermediate_size=40, tie_word_embeddings=False)),
        "seq2seq": Seq2Seq(bert, bert.replace(vocab_size=40), decoder_start_token_id=1),
    }


def _rules(name, model):
    if name == "seq2seq":
        return ckpt._seq2seq_rules(model.encoder.config, model.decoder.config, pooler=True)
    if name == "bert-encoder":
        return ckpt.key_map(model.config, "hf", pooler=True)
    return ckpt.key_map(model.config, "hf", lm_head=True)


@pytest.mark.parametrize("name", list(_models()))
def test_key_map_covers_every_parameter_exactly_once(name):
    model = _models()[name]
    rules = _rules(name, model)
    ours = [r.ours for r in rules]
    assert sorted(ours) == sorted(n for n, _ in model.named_parameters())
    hf = [h for r in rules for h in r.hf]
    assert len(hf) == len(set(hf))


def test_gpt2_conv1d_weights_are_the_transposed_ones(tmp_path):
    """Against transformers itself: every Conv1D module of a GPT2LMHeadModel (found by type, not from
    our list) stores W^T; after our load each of our Linear weights must equal that module's weight
    transposed, every other tensor must be equal as stored, and the logits must agree."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(3)
    # square attention projections (C x C) and c_fc / mlp.c_proj of different shapes: a missing
    # transpose of c_proj fails on values, not on shape
    ref = GPT2LMHeadModel(GPT2Config(vocab_size=61, n_positions=32, n_embd=24, n_layer=2, n_head=3, n_inner=40)).eval()
    ref.save_pretrained(tmp_path)
    ours = Decoder.from_pretrained(tmp_path)
    params = dict(ours.named_parameters())
    module_names = {"attn.c_attn": "attn.qkv_proj", "attn.c_proj": "attn.o_proj", "mlp.c_fc": "mlp.fc_in",
                    "mlp.c_proj": "mlp.fc_out", "ln_1": "attn_norm", "ln_2": "mlp_norm"}
    conv1d = [n for n, m in ref.transformer.named_modules() if isinstance(m, Conv1D)]
    assert len(conv1d) == 4 * 2
    checked = 0
    for name, t in ref.transformer.named_parameters():
        if name.startswith("h."):
            _, i, rest = name.split(".", 2)
            mod, kind = rest.rsplit(".", 1)
            want = params[f"layers.{i}.{module_names[mod]}.{kind}"]
            if f"h.{i}.{mod}" in conv1d and kind == "weight":
                assert t.shape == want.shape[::-1], name
                t = t.t()
        else:
            want = params[{"wte.weight": "embeddings.word_embeddings.weight",
                           "wpe.weight": "embeddings.position_embeddings.weight",
                           "ln_f.weight": "final_norm.weight", "ln_f.bias": "final_norm.bias"}[name]]
        assert torch.equal(want.detach(), t.detach()), name
        checked += 1
    assert checked == len(list(ref.transformer.parameters()))
    ids = torch.randint(0, 61, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(_models()))
def test_our_save_then_our_load_is_exact(name, tmp_path):
    model = _models()[name].eval()
    model.save_pretrained(tmp_path)
    cls = type(model)
    again = cls.from_pretrained(tmp_path)
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    if name.startswith(("gpt2", "llama")):
        tied = again.lm_head.decoder.weight is again.embeddings.word_embeddings.weight
        assert tied == model.config.tie_word_embeddings


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "config.json"
    ckpt.write_json(target, {"a": 1})

    def broken(p: str) -> None:  # the writer gets the temp file's path as a string
        Path(p).write_text('{"half": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left behind


def _tiny_bert_ref(seed=0):
    torch.manual_seed(seed)
    return BertModel(BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=40)).eval()


def test_sharded_safetensors_and_tf_era_names(tmp_path):
    ref = _tiny_bert_ref()
    ref.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ids = torch.randint(0, 60, (2, 7))
    want = ref(ids).last_hidden_state
    torch.testing.assert_close(Encoder.from_pretrained(tmp_path / "sharded")(ids).last_hidden_state, want,
                               atol=1e-5, rtol=0)
    # LayerNorm.gamma / .beta (BERT's TensorFlow-era names) are read as weight / bias
    from safetensors.torch import save_file
    old = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
           for k, v in ref.state_dict().items()}
    (tmp_path / "old").mkdir()
    save_file({k: v.contiguous() for k, v in old.items()}, str(tmp_path / "old" / "model.safetensors"))
    (tmp_path / "old" / "config.json").write_text(ref.config.to_json_string())
    torch.testing.assert_close(Encoder.from_pretrained(tmp_path / "old")(ids).last_hidden_state, want,
                               atol=1e-5, rtol=0)


def test_unused_tensors_are_reported(tmp_path):
    ref = _tiny_bert_ref()
    ref.save_pretrained(tmp_path)
    from safetensors.torch import load_file, save_file
    t = load_file(str(tmp_path / "model.safetensors"))
    t["encoder.layer.7.attention.self.query.weight"] = torch.zeros(2, 2)
    save_file(t, str(tmp_path / "model.safetensors"))
    with pytest.warns(UserWarning, match=r"1 tensors not used.*encoder\.layer\.7\.attention\.self\.query\.weight"):
        Encoder.from_pretrained(tmp_path)


def test_save_refuses_head_tensors_without_an_architecture(tmp_path):
    enc = _models()["bert-encoder"]
    with pytest.raises(CheckpointError, match="BertForMaskedLM"):
        enc.save_pretrained(tmp_path, extra_tensors={"cls.predictions.bias": torch.zeros(50)})
    with pytest.raises(CheckpointError, match="repeat model tensors"):
        enc.save_pretrained(tmp_path, architectures=["BertForMaskedLM"],
                            extra_tensors={"bert.embeddings.word_embeddings.weight": torch.zeros(50, 32)})


# ---- GGUF, written here with llama.cpp's conventions ---------------------------------------------------
def _llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    # convert_hf_to_gguf.py LlamaModel.permute: the "half" rotary layout -> interleaved pairs
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _write_tiny_gguf(ref: LlamaForCausalLM, path: Path, skip: str | None = None, arch: str = "llama") -> None:
    import gguf

    c = ref.config
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
    for i in range(c.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    for hf, gg in names.items():
        if gg == skip:
            continue
        arr = sd[hf]
        if gg.endswith("attn_q.weight"):
            arr = _llama_cpp_permute(arr, c.num_attention_heads)
        elif gg.endswith("attn_k.weight"):
            arr = _llama_cpp_permute(arr, c.num_key_value_heads)
        if gg == "token_embd.weight":  # one quantised tensor, as in real files
            q = gguf.quants.quantize(arr, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gg, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # shape from bytes
        else:
            w.add_tensor(gg, np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture()
def tiny_llama():
    torch.manual_seed(5)
    ref = LlamaForCausalLM(LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, rope_theta=30000.0,
                                       rms_norm_eps=1e-5, tie_word_embeddings=True)).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return ref


def test_tiny_gguf_loads_like_the_model_it_came_from(tiny_llama, tmp_path):
    import gguf

    f = tmp_path / "tiny.gguf"
    _write_tiny_gguf(tiny_llama, f)
    ours = Decoder.from_pretrained(f)
    assert ours.config.tie_word_embeddings and ours.config.rope_theta == 30000.0 and ours.config.kv_heads == 2
    emb = tiny_llama.model.embed_tokens.weight.detach().numpy()
    deq = gguf.quants.dequantize(gguf.quants.quantize(emb, gguf.GGMLQuantizationType.Q8_0),
                                 gguf.GGMLQuantizationType.Q8_0)
    with torch.no_grad():
        tiny_llama.model.embed_tokens.weight.copy_(torch.from_numpy(deq.reshape(emb.shape)))
        ids = torch.randint(0, 96, (2, 10))
        torch.testing.assert_close(ours(ids).logits, tiny_llama(ids).logits, atol=1e-5, rtol=0)


def test_gguf_errors_name_the_tensor_or_architecture(tiny_llama, tmp_path):
    _write_tiny_gguf(tiny_llama, tmp_path / "missing.gguf", skip="blk.1.ffn_up.weight")
    with pytest.raises(CheckpointError, match=r"missing tensor 'blk\.1\.ffn_up\.weight'"):
        Decoder.from_pretrained(tmp_path / "missing.gguf")
    _write_tiny_gguf(tiny_llama, tmp_path / "other.gguf", arch="falcon")
    with pytest.raises(CheckpointError, match="unsupported GGUF architecture 'falcon'"):
        Decoder.from_pretrained(tmp_path / "other.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(CheckpointError, match="junk.gguf: not a readable GGUF file"):
        Decoder.from_pretrained(tmp_path / "junk.gguf")


# ---- transferlm generate --------------------------------------------------------------------------------
def test_cli_generate_continues_a_prompt(tmp_path, capsys):
    from transferlm.tokenization.bpe import ByteLevelBPETokenizer

    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat. the dog sat on the log.\n" * 20)
    tok = ByteLevelBPETokenizer.train([text], vocab_size=300, progress=False)
    folder = tmp_path / "model"
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    model = Decoder(preset("gpt-mini", vocab_size=len(tok.vocab), num_layers=1, hidden_size=32, num_heads=2,
                           intermediate_size=64, eos_token_id=None)).eval()
    model.save_pretrained(folder)
    prompt = "the cat"
    ids = tok.encode(prompt).ids
    want = model.generate(torch.tensor([ids]), max_new_tokens=5)[0, len(ids):].tolist()
    assert main(["generate", "--model", str(folder), "--prompt", prompt, "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out == prompt + tok.decode(want) + "\n"
    # sampling with a seed is repeatable
    args = ["generate", "--model", str(folder), "--prompt", prompt, "--max-new-tokens", "6", "--top-k", "5",
            "--seed", "3"]
    main(args)
    first = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == first
    assert main(["generate", "--model", str(folder), "--prompt", prompt, "--top-p", "1.5"]) == 2
    assert "top_p must be in (0, 1]" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path / "nowhere"), "--prompt", prompt]) == 2


def test_bert_decoder_half_loads_as_bert_lm_head_model(tmp_path):
    from transformers import AutoModelForCausalLM, BertLMHeadModel

    dec = _models()["bert-decoder"].eval()
    dec.save_pretrained(tmp_path)
    back, info = AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(back, BertLMHeadModel)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ids = torch.randint(0, 50, (2, 6))
    memory = torch.randn(2, 4, 32)
    memory_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.no_grad():
        got = dec(ids, encoder_hidden_states=memory, encoder_attention_mask=memory_mask).logits
        want = back.eval()(input_ids=ids, encoder_hidden_states=memory, encoder_attention_mask=memory_mask).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_an_all_padding_row_gives_finite_outputs():
    enc = _models()["bert-encoder"].eval()
    ids = torch.randint(0, 50, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    with torch.no_grad():
        out = enc(ids, mask)
        alone = enc(ids[:1, :3])
    assert torch.isfinite(out.last_hidden_state).all() and torch.isfinite(out.pooler_output).all()
    torch.testing.assert_close(out.last_hidden_state[0, :3], alone.last_hidden_state[0], atol=1e-5, rtol=0)


def test_a_config_outside_its_family_cannot_be_saved(tmp_path):
    enc = Encoder(preset("bert-tiny", vocab_size=20, num_layers=1, position_embedding="sinusoidal"))
    with pytest.raises(CheckpointError, match="position_embedding='learned'"):
        enc.save_pretrained(tmp_path)
