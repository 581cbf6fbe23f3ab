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
    with pytest.raises(ValueError, match=r"c\.yaml:2: unknown config key 'learning_rate'"):
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


# ---- bad input: a clear error (exit 2) and nothing written ---------------------------------------

def _fails(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    for n in needles:
        assert n in err, err
    return err


def test_empty_and_non_utf8_corpora_are_refused_and_write_nothing(tmp_path, capsys, vocab):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n", encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes("a good line\n".encode() + b"caf\xe9 au lait\n")  # latin-1, not UTF-8
    for data, needles in ((empty, ["no text found", "empty.txt"]),
                          (bad, ["bad.txt:2: not valid UTF-8 (byte 0xe9 at column 4)"])):
        out = tmp_path / "runs" / data.stem
        _fails(capsys, ["pretrain", "--preset", "roberta", "--data", str(data), "--tokenizer", vocab,
                        "--model", "bert-tiny", "--output", str(out), "--no-progress-bar"], *needles)
        assert not (tmp_path / "runs").exists()


def test_max_length_below_what_the_specials_need(tmp_path, capsys, text, vocab):
    for preset, n, need in (("bert", 4, 5), ("roberta", 2, 3), ("gpt", 1, 2)):
        out = tmp_path / preset
        _fails(capsys, ["pretrain", "--preset", preset, "--data", str(text), "--tokenizer", vocab,
                        "--output", str(out), "--max-length", str(n)],
               f"max_length {n} is smaller than the {need} tokens the {preset} preset needs")
        assert not out.exists()
    from transferlm.data.corpus import PackedDataset

    with pytest.raises(ValueError, match="leaves no room for text"):
        PackedDataset(None, 2, prefix=[101], suffix=[102])


def test_init_from_a_folder_of_another_config(tmp_path, capsys, text, vocab):
    from transferlm.models import Encoder, preset
    from transferlm.models.decoder import Decoder

    Encoder(preset("bert-tiny", vocab_size=100)).save_pretrained(tmp_path / "small_vocab")
    Decoder(preset("gpt-mini", vocab_size=30522, num_layers=1)).save_pretrained(tmp_path / "gpt")
    common = ["pretrain", "--preset", "bert", "--data", str(text), "--tokenizer", vocab, "--max-length", "48"]
    out = tmp_path / "out"
    _fails(capsys, [*common, "--init-from", str(tmp_path / "small_vocab"), "--output", str(out)],
           "small_vocab: the model's vocabulary (100) is not the tokenizer's (30522")
    _fails(capsys, [*common, "--init-from", str(tmp_path / "gpt"), "--output", str(out)],
           "Encoder loads BERT checkpoints, this is model_type 'gpt2'")
    _fails(capsys, [*common, "--init-from", vocab, "--max-length", "4096", "--output", str(out)],
           "max_length 4096 is more than the 512 positions")
    assert not out.exists()


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory, text, vocab):
    """A real (not dry) one-step run of bert-tiny: its checkpoint is what the resume tests load."""
    out = tmp_path_factory.mktemp("resume") / "run"
    argv = ["pretrain", "--preset", "roberta", "--data", str(text), "--tokenizer", vocab, "--model", "bert-tiny",
            "--output", str(out), "--max-length", "48", "--batch-size", "8", "--steps", "1", "--no-progress-bar"]
    assert main(argv) == 0
    return out, argv


def test_resume_with_another_config_is_refused(one_step_run, capsys):
    out, argv = one_step_run
    ckpt = out / "checkpoints" / "step_00000001"
    _fails(capsys, [*argv, "--model", "bert-mini"], "pretrain_config.yaml: the checkpoints in",
           "model: 'bert-tiny' there, 'bert-mini' now", "--no-resume")
    # without the run's config file the weights themselves are compared, file named
    saved = (out / "pretrain_config.yaml").read_text(encoding="utf-8")
    (out / "pretrain_config.yaml").unlink()
    try:
        _fails(capsys, [*argv, "--model", "bert-mini"],
               f"{ckpt / 'model.safetensors'}: written for a different model configuration",
               "checkpoint [128] model [256]".replace(" model", ", model"))
    finally:
        (out / "pretrain_config.yaml").write_text(saved, encoding="utf-8")
    # a checkpoint folder is not a model folder for --init-from
    _fails(capsys, [*argv, "--init-from", str(ckpt), "--no-resume", "--output", str(out.parent / "other")],
           "a training checkpoint, not a model folder")
    assert not (out.parent / "other").exists()
    # the same options resume (the run is finished: nothing to do, same checkpoint)
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest", "step_00000001"]


def test_dry_run_prints_its_step_and_guards_its_checkpoint(tmp_path, capsys, text, vocab):
    out = tmp_path / "dry"
    argv = ["pretrain", "--preset", "roberta", "--data", str(text), "--eval-data", str(text), "--eval-examples", "8",
            "--tokenizer", vocab, "--model", "bert-tiny", "--output", str(out), "--max-length", "48",
            "--batch-size", "8", "--no-progress-bar"]
    assert main([*argv, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "dry run OK: 1 optimizer step of 8 examples x 48 tokens (roberta preset): mlm_loss" in printed
    assert "held-out: MLM accuracy" in printed and "unigram baseline" in printed
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if "eval_mlm_accuracy" in x]
    assert [r["step"] for r in evals] == [0, 1] and evals[0]["eval_masked_tokens"] > 0
    _fails(capsys, [*argv, "--steps", "2"], "holds a dry run's checkpoint")
