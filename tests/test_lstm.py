"""LSTM language models (models/lstm.py), their TBPTT training with the shared Trainer, and ULMFiT
(pipelines/ulmfit.py, `transferlm lm`, `transferlm finetune --model LSTM_DIR`) on real PTB and
BBC News text."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from transferlm.cli import main as cli_main
from transferlm.data import assets
from transferlm.models.lstm import (LSTMConfig, LSTMLanguageModel, StreamLM, TBPTTBlocks, WordVocab,
                                    embedding_dropout, folder_model_type, is_lstm_folder, lm_loss, locked_dropout,
                                    perplexity, tokenize)
from transferlm.pipelines.ulmfit import LMTrainConfig, UlmfitClassifier, is_lstm_classifier_folder, train_lm


@pytest.fixture(scope="module")
def ptb():
    train = assets.ptb_text("train").splitlines()[:1500]
    valid = assets.ptb_text("valid").splitlines()[:200]
    vocab = WordVocab.build(train)
    return vocab, vocab.encode_corpus("\n".join(train), "whitespace"), vocab.encode_corpus("\n".join(valid), "whitespace")


def tiny(vocab, **kw) -> LSTMLanguageModel:
    torch.manual_seed(0)
    return LSTMLanguageModel(LSTMConfig(vocab_size=len(vocab), emb_dim=16, hidden_size=24, **kw))


def test_vocab_and_tokenizers(ptb, tmp_path):
    vocab, ids, _ = ptb
    assert vocab.itos[:2] == ["<unk>", "<eos>"] and vocab.itos[2] == "the"  # most frequent PTB word
    line = assets.ptb_text("train").splitlines()[1]
    enc = vocab.encode_line(line, "whitespace")
    assert enc[-1] == 1 and [vocab.itos[i] for i in enc[:-1]] == line.split()
    assert tokenize("Profits rose 12.5% to $1,200m in 2004 - BBC's <unk>", "words") == \
        ["profits", "rose", "N", "%", "to", "$", "N", "m", "in", "N", "-", "bbc's", "<unk>"]
    vocab.save(tmp_path / "vocab.txt")
    assert WordVocab.load(tmp_path / "vocab.txt").itos == vocab.itos
    (tmp_path / "bad.txt").write_text("<unk>\n<eos>\nthe\ntwo words\n")
    with pytest.raises(ValueError, match=r"bad.txt:4: expected one word"):
        WordVocab.load(tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="no words"):
        vocab.encode_corpus("\n\n", "whitespace")


def test_model_shapes_tying_and_save_load(ptb, tmp_path):
    vocab, ids, _ = ptb
    lm = tiny(vocab).eval()
    assert lm.decoder.weight is lm.embed.weight
    assert [l.hidden_size for l in lm.layers] == [24, 16]  # the last layer outputs emb_dim (tied)
    x = ids[:60].view(3, 20)
    out = lm(x)
    assert out["logits"].shape == (3, 20, len(vocab))
    # carrying the state over two halves equals one pass over the whole sequence
    a = lm(x[:, :10])
    b = lm(x[:, 10:], a["hidden"])
    torch.testing.assert_close(torch.cat([a["logits"], b["logits"]], 1), out["logits"], atol=1e-5, rtol=1e-5)
    lm.save_pretrained(tmp_path / "m", vocab)
    assert is_lstm_folder(tmp_path / "m") and not is_lstm_classifier_folder(tmp_path / "m")
    assert folder_model_type(tmp_path / "m") == "lstm_lm" and folder_model_type(tmp_path) is None  # no config.json
    for i, bad in enumerate((b"[1]", b"{not json", b'{"model_type": "lstm_lm\xff"}')):  # not an object / JSON / UTF-8
        (tmp_path / f"bad{i}").mkdir()
        (tmp_path / f"bad{i}" / "config.json").write_bytes(bad)
        assert folder_model_type(tmp_path / f"bad{i}") is None and not is_lstm_folder(tmp_path / f"bad{i}")
    lm2, vocab2 = LSTMLanguageModel.from_pretrained(tmp_path / "m")
    assert lm2.decoder.weight is lm2.embed.weight and vocab2.itos == vocab.itos
    torch.testing.assert_close(lm2.eval()(x)["logits"], out["logits"])
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["bogus"] = 1
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"config.json: unknown keys \['bogus'\]"):
        LSTMLanguageModel.from_pretrained(tmp_path / "m")


def test_lstm_layer_matches_the_lstm_equations(ptb):
    """Our stack runs torch's nn.LSTM; check one layer against the LSTM equations written out."""
    vocab, ids, _ = ptb
    lm = tiny(vocab, num_layers=1).eval()
    x = lm.embed(ids[:8].view(1, 8))  # (1, T, E)
    layer = lm.layers[0]
    h = torch.zeros(1, 16)
    c = torch.zeros(1, 16)
    outs = []
    for t in range(8):
        g = x[:, t] @ layer.weight_ih_l0.T + layer.bias_ih_l0 + h @ layer.weight_hh_l0.T + layer.bias_hh_l0
        i, f, gg, o = g.chunk(4, -1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    raw, _, _ = lm.encode(ids[:8].view(1, 8))
    torch.testing.assert_close(raw[0][0], torch.cat(outs), atol=1e-6, rtol=1e-5)


def test_awd_regularisers(ptb):
    vocab, ids, _ = ptb
    torch.manual_seed(1)
    x = torch.randn(4, 7, 5)
    y = locked_dropout(x, 0.5, True)
    keep = (y != 0)
    assert (keep == keep[:, :1]).all()  # one mask per sequence, shared over time
    torch.testing.assert_close(y[keep], x[keep] * 2)
    assert torch.equal(locked_dropout(x, 0.5, False), x)
    lm = tiny(vocab)
    batch = ids[:200].view(4, 50)
    e = embedding_dropout(lm.embed, batch, 0.5, True)
    dropped = (e == 0).all(-1)  # (B, T): every occurrence of a dropped word is zero
    for w in batch.unique():
        d = dropped[batch == w]
        assert d.all() or not d.any()
    assert 0 < dropped.float().mean() < 1
    # weight drop: training outputs differ from eval's, the raw matrix gets the gradient
    lm = tiny(vocab, wdrop=0.5)
    lm.train()
    out = lm(batch[:, :10])
    out["logits"].sum().backward()
    assert lm.layers[0].weight_hh_l0.grad is not None and lm.layers[0].weight_hh_l0.grad.abs().sum() > 0
    lm.eval()
    a = lm(batch[:, :10])["logits"]
    torch.testing.assert_close(a, lm(batch[:, :10])["logits"])  # deterministic in eval
    lm.train()
    assert not torch.allclose(lm(batch[:, :10])["logits"], a)
    # AR and TAR: the loss adds alpha * mean(dropped^2) and beta * mean((h_t - h_{t-1})^2)
    lm = tiny(vocab, alpha=2.0, beta=1.0, dropout=0.3)
    lm.train()
    torch.manual_seed(3)
    out = lm(batch[:, :10])
    losses = lm_loss(lm, out, batch[:, 1:11])
    ce = F.cross_entropy(out["logits"].reshape(-1, len(vocab)), batch[:, 1:11].reshape(-1))
    h = out["raw"][-1]
    expect = ce + 2.0 * out["dropped"][-1].pow(2).mean() + 1.0 * (h[:, 1:] - h[:, :-1]).pow(2).mean()
    torch.testing.assert_close(losses["loss"], expect)
    torch.testing.assert_close(losses["ce"], ce.detach())


def test_perplexity_is_exp_of_the_mean_cross_entropy(ptb):
    vocab, _, valid = ptb
    lm = tiny(vocab).eval()
    ids = valid[:401]
    with torch.no_grad():
        logits = lm(ids[:-1].view(1, -1))["logits"][0]
    manual = math.exp(float(F.cross_entropy(logits, ids[1:])))
    assert perplexity(lm, ids, batch_size=1, bptt=35) == pytest.approx(manual, rel=1e-4)


def test_tbptt_blocks_are_contiguous_streams(ptb):
    _, ids, _ = ptb
    data = TBPTTBlocks(ids, 4, 10)
    n = ids.numel() // 4
    a, b = data[0], data[1]
    assert torch.equal(a["input_ids"][2], ids[2 * n:2 * n + 10])
    assert torch.equal(a["labels"][2], ids[2 * n + 1:2 * n + 11])
    assert torch.equal(b["input_ids"][:, 0], a["labels"][:, -1])


def _train(vocab, ids, valid, out, stop_at=None, **kw):
    lm = tiny(vocab, dropout=0.2, dropouth=0.1, dropouti=0.2, dropoute=0.1, wdrop=0.2, alpha=1.0, beta=1.0)
    cfg = LMTrainConfig(out=str(out), epochs=2, batch_size=8, bptt=12, log_every=1, save_every=4,
                        progress=False, stop_at=stop_at, decay_start=1, **kw)
    res = train_lm(lm, vocab, ids, valid, cfg)
    return lm, res


def test_trainer_exact_resume_with_carried_state(ptb, tmp_path):
    """A run stopped mid-epoch (hidden state, dropout RNG, SGD schedule in flight) and resumed
    equals the uninterrupted run: the same losses, valid perplexities and weights."""
    vocab, ids, valid = ptb
    ids = ids[:8 * (12 * 9 + 1)]  # 8 streams of 109 tokens: 9 blocks an epoch, 18 steps
    lm_a, _ = _train(vocab, ids, valid[:2000], tmp_path / "a")
    _, res = _train(vocab, ids, valid[:2000], tmp_path / "b", stop_at=13)
    assert res["step"] == 13 and not (tmp_path / "b" / "model").exists()
    lm_b, _ = _train(vocab, ids, valid[:2000], tmp_path / "b")
    for name, p in lm_a.state_dict().items():
        torch.testing.assert_close(lm_b.state_dict()[name], p, rtol=0, atol=0)
    rows = lambda d: [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    a = [(r["step"], r.get("loss"), r.get("eval_ppl")) for r in rows(tmp_path / "a")]
    b = [(r["step"], r.get("loss"), r.get("eval_ppl")) for r in rows(tmp_path / "b") if r["step"] != 13 or "loss" in r]
    assert [x for x in a if x[2] is None] == [x for x in b if x[2] is None]
    assert [x for x in a if x[2] is not None] == [x for x in b if x[2] is not None and x[0] % 9 == 0]
    assert [r["lr"] for r in rows(tmp_path / "a") if "lr" in r] == [1.0] * 9 + [0.5] * 9  # epoch decay


def test_lm_learns_real_text_via_cli(ptb, tmp_path):
    """`transferlm lm train` on 1,500 PTB lines: the valid perplexity falls far below the uniform
    model's (the vocabulary size), and `lm evaluate` reproduces the saved model's number."""
    train = "\n".join(assets.ptb_text("train").splitlines()[:600])
    valid = "\n".join(assets.ptb_text("valid").splitlines()[:100])
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "valid.txt").write_text(valid)
    args = ["lm", "train", "--train", str(tmp_path / "train.txt"), "--valid", str(tmp_path / "valid.txt"),
            "--out", str(tmp_path / "run"), "--emb-dim", "32", "--hidden-size", "32", "--epochs", "3",
            "--decay-start", "3", "--batch-size", "10", "--bptt", "20", "--no-progress"]
    assert cli_main(args) == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ppl = [r["eval_ppl"] for r in rows if "eval_ppl" in r]
    vocab_size = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["vocab_size"]
    assert len(ppl) == 3 and ppl[-1] < ppl[0] and ppl[-1] < vocab_size / 8
    assert cli_main(["lm", "evaluate", "--model", str(tmp_path / "run" / "model"), "--text",
                     str(tmp_path / "valid.txt"), "--batch-size", "10"]) == 0
    (tmp_path / "empty.txt").write_text("\n")
    assert cli_main(["lm", "train", "--train", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "x")]) == 2


# ------------------------------------------------------------------------------------------ ULMFiT

@pytest.fixture(scope="module")
def bbc_lm(tmp_path_factory):
    """A small LSTM LM trained on real BBC text ("words" tokenizer), saved as an LSTM folder."""
    data = assets.bbc_news()
    text = "\n".join(t for t, _ in data[::50])
    vocab = WordVocab.build(text.splitlines(), "words", max_size=2000)
    torch.manual_seed(0)
    lm = LSTMLanguageModel(LSTMConfig(vocab_size=len(vocab), emb_dim=32, hidden_size=32, tokenizer="words",
                                      dropout=0.1, dropouti=0.1))
    out = tmp_path_factory.mktemp("bbc-lm")
    train_lm(lm, vocab, vocab.encode_corpus(text, "words"), None,
             LMTrainConfig(out=str(out), epochs=1, batch_size=16, bptt=20, progress=False, stop_at=None))
    return out / "model", data


def test_ulmfit_recipe_pieces(bbc_lm):
    folder, data = bbc_lm
    labels = sorted({y for _, y in data})
    clf = UlmfitClassifier.new(folder, labels)
    lm, _ = LSTMLanguageModel.from_pretrained(folder)
    torch.testing.assert_close(clf.model.layers[1].weight_hh_l0, lm.layers[1].weight_hh_l0)  # LM weights loaded
    scratch = UlmfitClassifier.new(folder, labels, pretrained=False)
    assert not torch.allclose(scratch.model.layers[1].weight_hh_l0, lm.layers[1].weight_hh_l0)
    # concat pooling: 3 x the last layer's size
    assert clf.model.head.proj.in_features == 3 * 32
    # discriminative rates and gradual unfreezing, observed through a 2-epoch fit on real articles
    from transferlm.training import optim

    seen = {}
    orig = optim.GradualUnfreezing.__call__

    def spy(self, epoch):
        orig(self, epoch)
        seen[epoch] = sorted({".".join(n.split(".")[1:3]) if ".layers." in n else n.split(".")[1]
                              for n, p in self.model.named_parameters() if p.requires_grad})

    optim.GradualUnfreezing.__call__ = spy
    try:
        texts = [t for t, _ in data[::45]]
        ys = [y for _, y in data[::45]]
        import transferlm.pipelines.ulmfit as U

        made = {}
        orig_build = U.build_optimizer

        def build(model, lr, *a, **k):
            opt = orig_build(model, lr, *a, **k)
            made["lrs"] = sorted({g["lr"] for g in opt.param_groups})
            return opt

        U.build_optimizer = build
        try:
            clf.fit(texts, ys, epochs=4, lr=0.01, batch_size=len(texts) // 2, progress=False,
                    out_dir=str(folder.parent / "clf-run"))
        finally:
            U.build_optimizer = orig_build
    finally:
        optim.GradualUnfreezing.__call__ = orig
    head = ["head", "head_norm"]
    assert seen[0] == head and seen[1] == [*head, "layers.1"] and seen[2] == [*head, "layers.0", "layers.1"]
    assert seen[3] == ["embed", *head, "layers.0", "layers.1"]
    lrs = made["lrs"]  # embed, layer 0, layer 1, head: 0.01 / 2.6^(3 - g)
    assert lrs == pytest.approx([0.01 / 2.6 ** 3, 0.01 / 2.6 ** 2, 0.01 / 2.6, 0.01])
    rows = [json.loads(x) for x in (folder.parent / "clf-run" / "metrics.jsonl").read_text().splitlines()]
    from transferlm.training.schedules import SlantedTriangular

    st = SlantedTriangular(8)
    assert [r["lr"] for r in rows] == pytest.approx([0.01 / 2.6 ** 3 * st(s - 1) for s in (2, 4, 6, 8)])  # the embeddings' rate


def test_finetune_cli_on_an_lstm_folder(bbc_lm, tmp_path, capsys):
    """`transferlm finetune --task classify --model LSTM_DIR` on real BBC articles: trains the
    ULMFiT classifier, saves it, and it reloads with the same predictions; it fits its training set."""
    folder, data = bbc_lm
    train = data[::40]
    dev = data[5::90]
    for name, rows in (("train", train), ("dev", dev)):
        with open(tmp_path / f"{name}.jsonl", "w") as f:
            for t, y in rows:
                f.write(json.dumps({"text": t, "label": y}) + "\n")
    args = ["finetune", "--task", "classify", "--model", str(folder), "--train", str(tmp_path / "train.jsonl"),
            "--dev", str(tmp_path / "dev.jsonl"), "--out", str(tmp_path / "out"), "--no-progress",
            "--epochs", "20", "--max-length", "80"]
    assert cli_main(args) == 0
    assert is_lstm_classifier_folder(tmp_path / "out" / "model") and not is_lstm_folder(tmp_path / "out" / "model")
    clf = UlmfitClassifier.from_pretrained(tmp_path / "out" / "model")
    texts, ys = [t for t, _ in train], [y for _, y in train]
    acc = clf.evaluate(texts, ys)["accuracy"]
    assert acc >= 0.5, acc  # 56 articles, 5 classes, a barely trained 32-unit LM: chance is 0.2
    assert {p["label"] for p in clf.predict([t for t, _ in dev])} <= set(clf.labels)
    # the saved folder is a pipeline folder like any other: `transferlm evaluate` / `predict` open it
    assert cli_main(["evaluate", "--model", str(tmp_path / "out" / "model"), "--data", str(tmp_path / "train.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] == pytest.approx(acc)
    rows = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_accuracy" in r for r in rows)
    assert cli_main(["finetune", "--task", "tag", "--model", str(folder), "--train", str(tmp_path / "train.jsonl"),
                     "--out", str(tmp_path / "o2")]) == 2
