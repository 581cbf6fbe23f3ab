"""`transferlm pretrain` end to end (dry runs of one step on real text with the real WordPiece
vocabulary) and `transferlm plot`: the output folders load in transformers with every tensor used,
and give the same logits as our model."""

from __future__ import annotations

import json

import pytest
import torch

from transferlm.cli import main
from transferlm.cli.pretrain import PretrainConfig, build, load_config
from transferlm.data import assets


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    lines = [ln.strip() for ln in assets.ptb_text("valid").splitlines() if ln.strip()][:240]
    docs = ["\n".join(lines[i:i + 8]) for i in range(0, len(lines), 8)]  # 30 documents of 8 sentences
    path = tmp_path_factory.mktemp("text") / "ptb.txt"
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def vocab():
    return str(assets.path("minilm"))


def _pretrain(out, text, vocab, preset, *extra):
    argv = ["pretrain", "--preset", preset, "--data", str(text), "--tokenizer", vocab, "--output", str(out),
            "--max-length", "48", "--batch-size", "8", "--sentence-split", "line", "--no-progress-bar",
            "--dry-run", *extra]
    assert main(argv) == 0
    return out / "model"


def _batch(folder, n=3):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    return tok(["the company said it expects a loss", "shares rose"] [:n], ["in the third quarter", "sharply"][:n],
               return_tensors="pt", padding=True)


def test_bert_preset_gives_a_bert_for_pretraining_folder(tmp_path, text, vocab):
    from transformers import BertForPreTraining

    folder = _pretrain(tmp_path / "bert", text, vocab, "bert", "--model", "bert-tiny")
    recs = [json.loads(x) for x in (tmp_path / "bert" / "metrics.jsonl").read_text().splitlines()]
    assert len(recs) == 1 and {"loss", "mlm_loss", "nsp_loss", "mlm_accuracy"} <= set(recs[0])
    hf, info = BertForPreTraining.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    hf.eval()
    # our model, rebuilt and loaded from the trainer's last checkpoint, gives the same logits
    cfg = load_config(None, {"preset": "bert", "data": [str(text)], "tokenizer": vocab, "model": "bert-tiny",
                             "output": str(tmp_path / "bert"), "max_length": 48, "sentence_split": "line",
                             "progress_bar": False})
    ours = build(cfg)[0]
    from transferlm.training import latest_checkpoint, load_checkpoint

    load_checkpoint(latest_checkpoint(tmp_path / "bert" / "checkpoints"), ours)
    ours.eval()
    b = _batch(folder)
    with torch.no_grad():
        ref = hf(**b)
        out = ours.encoder(b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"])
        mlm = ours.cls.predictions(out.last_hidden_state)
        nsp = ours.cls.seq_relationship(out.pooler_output)
    real = b["attention_mask"].bool()
    torch.testing.assert_close(mlm[real], ref.prediction_logits[real], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(nsp, ref.seq_relationship_logits, rtol=1e-4, atol=1e-4)


def test_roberta_and_spanbert_presets_give_masked_lm_folders(tmp_path, text, vocab):
    from transformers import BertForMaskedLM

    for preset in ("roberta", "spanbert"):
        folder = _pretrain(tmp_path / preset, text, vocab, preset, "--model", "bert-tiny")
        recs = [json.loads(x) for x in (tmp_path / preset / "metrics.jsonl").read_text().splitlines()]
        assert "nsp_loss" not in recs[0]
        assert ("sbo_loss" in recs[0]) == (preset == "spanbert")
        hf, info = BertForMaskedLM.from_pretrained(str(folder), output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]


def test_gpt_preset_gives_a_gpt2_folder(tmp_path, text, vocab):
    from transformers import GPT2LMHeadModel

    folder = _pretrain(tmp_path / "gpt", text, vocab, "gpt")
    hf, info = GPT2LMHeadModel.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    cfg = load_config(None, {"preset": "gpt", "data": [str(text)], "tokenizer": vocab, "output": str(tmp_path / "gpt"),
                             "max_length": 48, "sentence_split": "line", "progress_bar": False})
    ours = build(cfg)[0]
    from transferlm.training import latest_checkpoint, load_checkpoint

    load_checkpoint(latest_checkpoint(tmp_path / "gpt" / "checkpoints"), ours)
    ids = torch.tensor([[101, 1996, 2194, 2056, 2009, 102]])
    hf.eval(), ours.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours.decoder(ids).logits, hf(ids).logits, rtol=1e-4, atol=1e-4)


def test_config_file_mirrors_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: spanbert\nsteps: 7\nlr: 0.001\ndata: some.txt\nmax-length: 64\n")
    cfg = load_config(f, {"steps": 9, "lr": None})
    assert (cfg.preset, cfg.steps, cfg.lr, cfg.data, cfg.max_length) == ("spanbert", 9, 0.001, ["some.txt"], 64)
    f.write_text("preset: bert\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"c\.yaml: unknown config key 'learning_rate'"):
        load_config(f, {})
    f.write_text("steps: many\n")
    with pytest.raises(ValueError, match="steps must be an integer"):
        load_config(f, {})
    with pytest.raises(ValueError, match="preset must be one of"):
        PretrainConfig(preset="xlnet")


def test_cli_reports_user_errors(tmp_path, capsys, vocab):
    f = tmp_path / "c.yaml"
    f.write_text("bogus: 1\n")
    assert main(["pretrain", "--config", str(f)]) == 2
    assert "unknown config key 'bogus'" in capsys.readouterr().err
    assert main(["pretrain", "--tokenizer", vocab]) == 2
    assert "no training text" in capsys.readouterr().err


def test_plot_command(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 5 / s, "mlm_loss": 4 / s,
                                                                "mlm_accuracy": s / 10}) + "\n" for s in range(1, 6)))
    assert main(["plot", str(tmp_path)]) == 0
    png = tmp_path / "curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and str(png) in capsys.readouterr().out
    assert main(["plot", str(tmp_path / "nowhere")]) == 2


def test_llama_decoder_exports_as_llama_for_causal_lm(tmp_path, vocab):
    from transformers import LlamaForCausalLM

    from transferlm.cli.pretrain import export
    from transferlm.models import preset
    from transferlm.models.decoder import Decoder
    from transferlm.objectives.pretraining import CausalLMModel
    from transferlm.tokenization.io import load_tokenizer

    torch.manual_seed(0)
    mc = preset("smollm2", num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, intermediate_size=128,
                vocab_size=120)
    model = CausalLMModel(Decoder(mc)).eval()
    folder = export(model, load_tokenizer(vocab), PretrainConfig(preset="gpt"), tmp_path / "llama")
    hf, info = LlamaForCausalLM.from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    ids = torch.randint(0, 120, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model.decoder(ids).logits, hf.eval()(ids).logits, rtol=1e-4, atol=1e-4)
