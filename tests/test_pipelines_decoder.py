"""GPT-1 fine-tuning of causal decoders (pipelines/decoder_classification.py).

Tiny random GPT-2 and Llama checkpoints made by transformers: our saved folders reload in
GPT2ForSequenceClassification / LlamaForSequenceClassification with the same logits on padded
batches; the auxiliary LM loss equals transformers' causal LM loss on the same inputs, and the
total loss and its gradients are L2 + lambda * L1; the real SmolLM2 GGUF asset fine-tunes.
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import (GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM, LlamaForSequenceClassification)

from transferlm.data import assets
from transferlm.data.finetune_collate import FinetuneCollator
from transferlm.pipelines import DecoderClassifier, TextClassifier, load
from transferlm.tokenization.bpe import ByteLevelBPETokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["Shares fell sharply after the results.", "The striker scored twice in the final.",
         "Parliament voted on the new bill today.", "The film won three awards at the festival.",
         "A new phone chip doubles battery life.", "Profits rose as the bank cut costs."]
LABELS = ["business", "sport", "politics", "entertainment", "tech", "business"]
PAIRS = ["Markets were calm.", "He was injured.", "Ministers resigned.", "Critics disliked it.",
         "It ships next year.", "Costs went up."]


def _bbc_sample(n_per_class: int = 6):
    data = assets.bbc_news()
    random.Random(0).shuffle(data)
    labels = sorted({y for _, y in data})
    return labels, [x for lab in labels for x in [d for d in data if d[1] == lab][:n_per_class]]


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    """A tiny random GPT2LMHeadModel with a GPT-2-style byte-level BPE (<|endoftext|> only, no pad)."""
    folder = tmp_path_factory.mktemp("gpt2")
    _, rows = _bbc_sample()
    text = tmp_path_factory.mktemp("txt") / "bbc.txt"
    text.write_text("\n".join(t for t, _ in rows), encoding="utf-8")
    tok = ByteLevelBPETokenizer.train([text], vocab_size=400, progress=False)
    assert set(tok.special_tokens.values()) == {"<|endoftext|>"}  # bos = eos = unk, no pad: as GPT-2
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                     bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    """A tiny random LlamaForCausalLM (untied LM head, GQA) with SmolLM2's tokenizer."""
    folder = tmp_path_factory.mktemp("llama")
    tok = ByteLevelBPETokenizer.from_gguf(assets.path("smollm2"))
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def _train_a_little(clf, pair: bool = False):
    clf.fit(TEXTS, LABELS, pairs=PAIRS if pair else None, max_steps=3, batch_size=3, lr=1e-2, progress=False)
    return clf


def _padded_batch(clf, pair: bool = False):
    feats = clf.features(TEXTS, PAIRS if pair else None)
    batch = FinetuneCollator(clf.pad_id)(feats)
    assert (batch["attention_mask"] == 0).any()  # really padded
    return batch


@pytest.mark.parametrize("pair", [False, True])
def test_gpt2_folder_reloads_in_transformers_with_same_logits(gpt2_folder, tmp_path, pair):
    clf = TextClassifier.new(gpt2_folder, labels=sorted(set(LABELS)), max_length=48, pair=pair)
    assert isinstance(clf, DecoderClassifier) and clf.task == ("pair" if pair else "classify")
    eot = clf.tokenizer.token_to_id("<|endoftext|>")
    assert clf.pad_id != eot  # GPT-2 has no pad token: another id, never the extract token
    _train_a_little(clf, pair)
    out = clf.save_pretrained(tmp_path / "clf")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["GPT2ForSequenceClassification"] and cfg["pad_token_id"] == clf.pad_id
    assert cfg["id2label"] == {str(i): lab for i, lab in enumerate(clf.labels)}
    batch = _padded_batch(clf, pair)
    ids = batch["input_ids"]
    if pair:  # GPT-1 fig. 1: <start> A <delim> B <extract>
        row = ids[0, :int(batch["attention_mask"][0].sum())].tolist()
        assert row[0] == eot and row[-1] == eot and row.count(eot) == 3
    with torch.no_grad():
        ours = clf.model({k: v for k, v in batch.items()})["logits"]
        ref = GPT2ForSequenceClassification.from_pretrained(out).eval()
        want = ref(input_ids=ids, attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-5)
    again = load(out)  # our own reload: same class, options and logits
    assert type(again) is DecoderClassifier and again.options == clf.options
    torch.testing.assert_close(again.predict_proba(TEXTS, PAIRS if pair else None),
                               clf.predict_proba(TEXTS, PAIRS if pair else None))


def test_llama_folder_reloads_in_transformers_with_same_logits(llama_folder, tmp_path):
    clf = TextClassifier.new(llama_folder, labels=sorted(set(LABELS)), max_length=32, aux_lm_weight=0.5)
    tok = clf.tokenizer
    # SmolLM2's tokenizer: pad = eos = <|im_end|> is the extract token, so padding uses unk (<|endoftext|>)
    assert clf.options.extract_token == "<|im_end|>" and clf.options.start_token == "<|im_start|>"
    assert clf.pad_id == tok.token_to_id("<|endoftext|>")
    _train_a_little(clf)
    out = clf.save_pretrained(tmp_path / "clf")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForSequenceClassification"] and cfg["pad_token_id"] == clf.pad_id
    batch = _padded_batch(clf)
    with torch.no_grad():
        ours = clf.model({k: v for k, v in batch.items()})["logits"]
        ref = LlamaForSequenceClassification.from_pretrained(out).eval()
        want = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(ours, want, atol=1e-5, rtol=1e-5)
    again = load(out)
    torch.testing.assert_close(again.decoder.lm_head.decoder.weight, clf.decoder.lm_head.decoder.weight)
    assert [p["label"] for p in again.predict(TEXTS)] == [p["label"] for p in clf.predict(TEXTS)]


def test_aux_lm_loss_equals_transformers_and_total_is_task_plus_lambda_lm(gpt2_folder):
    torch.manual_seed(0)
    clf = TextClassifier.new(gpt2_folder, labels=sorted(set(LABELS)), max_length=24, aux_lm_weight=0.5)
    feats = clf.features(TEXTS, None, LABELS)
    batch = FinetuneCollator(clf.pad_id)(feats)
    clf.model.eval()  # no dropout: comparable with the reference
    res = clf.model(batch)
    ref = GPT2LMHeadModel.from_pretrained(gpt2_folder).eval()
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    want = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).loss
    torch.testing.assert_close(res["lm_loss"], want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(res["task_loss"], torch.nn.functional.cross_entropy(res["logits"], batch["labels"]))
    torch.testing.assert_close(res["loss"], res["task_loss"] + 0.5 * res["lm_loss"])

    # gradients: L3 = L2 + lambda * L1 holds for the parameters' gradients too
    params = [p for p in clf.model.parameters() if p.requires_grad]
    g_task = torch.autograd.grad(res["task_loss"], params, retain_graph=True, allow_unused=True)
    g_lm = torch.autograd.grad(res["lm_loss"], params, retain_graph=True, allow_unused=True)
    g_all = torch.autograd.grad(res["loss"], params, allow_unused=True)
    for p, a, b, c in zip(params, g_task, g_lm, g_all):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        torch.testing.assert_close(c, a + 0.5 * b, atol=1e-6, rtol=1e-4)
    assert any(b is not None and b.abs().sum() > 0 for b in g_lm)  # the LM part does reach the body

    # lambda = 0: no LM term, the loss is the task loss alone, and the gradients change
    clf.options.aux_lm_weight = 0.0
    res0 = clf.model(batch)
    assert "lm_loss" not in res0
    torch.testing.assert_close(res0["loss"], res["task_loss"].detach())
    g0 = torch.autograd.grad(res0["loss"], params, allow_unused=True)
    emb = dict(clf.model.named_parameters())["encoder.embeddings.word_embeddings.weight"]
    i = next(k for k, p in enumerate(params) if p is emb)  # tied: input embeddings = the LM head
    torch.testing.assert_close(g0[i], g_task[i])
    assert not torch.allclose(g0[i], g_all[i])


def test_untied_lm_head_trains_only_with_the_aux_loss(llama_folder):
    for lam, moves in ((0.0, False), (0.5, True)):
        clf = TextClassifier.new(llama_folder, labels=sorted(set(LABELS)), max_length=32, aux_lm_weight=lam)
        before = clf.decoder.lm_head.decoder.weight.detach().clone()
        hist = _train_a_little(clf).history
        after = clf.decoder.lm_head.decoder.weight.detach()
        assert (not torch.equal(before, after)) == moves, lam
        assert ("train_lm_loss" in hist[-1]) == moves


def test_bad_options(gpt2_folder):
    with pytest.raises(ValueError, match="pooling='last'"):
        TextClassifier.new(gpt2_folder, labels=["a", "b"], pooling="cls")
    with pytest.raises(ValueError, match="aux_lm_weight"):
        TextClassifier.new(gpt2_folder, labels=["a", "b"], aux_lm_weight=-1)
    clf = TextClassifier.new(gpt2_folder, labels=["a", "b"], max_length=16)
    assert [f["labels"] for f in clf.features(["x", "y"], None, ["b", "a"])] == [1, 0]
    with pytest.raises(KeyError, match="example 1: unknown label 'c'"):
        clf.features(["x", "y"], None, ["a", "c"])
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        clf.features(["x", "y"], None, ["a"])
    from transferlm.pipelines import Tagger

    with pytest.raises(TypeError, match="decoder"):
        Tagger.new(gpt2_folder, labels=["O", "B-X", "I-X"])


@pytest.mark.parametrize("task", ["classify", "pair"])
def test_cli_finetune_evaluate_predict_on_a_decoder_folder(gpt2_folder, tmp_path, capsys, monkeypatch, task):
    import io

    from transferlm.cli import main

    rows = [{"text": t, "label": y, **({"text_b": b} if task == "pair" else {})}
            for t, y, b in zip(TEXTS, LABELS, PAIRS)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["finetune", "--task", task, "--model", str(gpt2_folder), "--train",
                 str(tmp_path / "train.jsonl"), "--dev", str(tmp_path / "train.jsonl"), "--out",
                 str(tmp_path / "run"), "--max-steps", "4", "--batch-size", "3", "--max-length", "48",
                 "--aux-lm-weight", "0.25", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "dev_accuracy" in res
    model = tmp_path / "run" / "model"
    pipe = load(model)
    assert isinstance(pipe, DecoderClassifier) and pipe.options.aux_lm_weight == 0.25
    assert pipe.task == task and pipe.options.pair == (task == "pair")
    assert main(["evaluate", "--model", str(model), "--data", str(tmp_path / "train.jsonl")]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["accuracy"] == pytest.approx(res["dev_accuracy"])
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(json.dumps(r) + "\n" for r in rows)))
    assert main(["predict", "--model", str(model)]) == 0
    got = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    want = pipe.predict(TEXTS, PAIRS if task == "pair" else None)
    assert [g["label"] for g in got] == [w["label"] for w in want]


def test_cli_refuses_aux_lm_weight_for_an_encoder_and_tagging_on_a_decoder(gpt2_folder, tmp_path, capsys):
    from transferlm.cli import main

    (tmp_path / "train.jsonl").write_text(json.dumps({"text": "a b", "label": "x"}) + "\n")
    assert main(["finetune", "--task", "classify", "--model", "minilm", "--train", str(tmp_path / "train.jsonl"),
                 "--out", str(tmp_path / "o"), "--aux-lm-weight", "0.5"]) == 2
    assert "--aux-lm-weight is for classify / pair on a causal decoder" in capsys.readouterr().err
    (tmp_path / "t.conll").write_text("a\tO\nb\tB-X\n\n")
    assert main(["finetune", "--task", "tag", "--model", str(gpt2_folder), "--train", str(tmp_path / "t.conll"),
                 "--out", str(tmp_path / "o2")]) == 2
    assert "is a causal decoder" in capsys.readouterr().err


def test_smollm2_gguf_asset_fine_tunes():
    labels, rows = _bbc_sample(2)
    clf = TextClassifier.new("smollm2", labels=labels, max_length=24)
    assert isinstance(clf, DecoderClassifier) and clf.decoder.config.num_layers == 30
    assert clf.options.aux_lm_weight == 0.5  # GPT-1's lambda by default
    texts, ys = [t for t, _ in rows], [y for _, y in rows]
    hist = clf.fit(texts, ys, max_steps=2, batch_size=5, lr=5e-5, progress=False)
    last = hist[-1]
    assert last["step"] == 2 and last["train_loss"] == pytest.approx(last["train_task_loss"] + 0.5 * last["train_lm_loss"], rel=1e-4)
    assert 1.0 < last["train_lm_loss"] < 8.0  # a pretrained LM on news text, not a random one (ln V = 10.8)
    pred = clf.predict(texts[:3])
    assert len(pred) == 3 and all(p["label"] in labels for p in pred)
