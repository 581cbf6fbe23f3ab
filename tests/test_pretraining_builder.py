"""objectives/builder.py: the one pretraining builder behind `transferlm pretrain`, the demo and the
benchmarks; each preset's row of the table decides the model, data, masking and exported folder."""

from __future__ import annotations

import json

import pytest
import torch

from transferlm.data import assets
from transferlm.data.corpus import NSPDataset, PackedDataset
from transferlm.objectives import builder
from transferlm.objectives.pretraining import CausalLMModel, PretrainingModel
from transferlm.tokenization.io import load_tokenizer
from transferlm.training import seed_everything


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    lines = [ln.strip() for ln in assets.ptb_text("valid").splitlines() if ln.strip()][:160]
    path = tmp_path_factory.mktemp("text") / "ptb.txt"
    path.write_text("\n\n".join("\n".join(lines[i:i + 8]) for i in range(0, len(lines), 8)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(assets.path("minilm"))


def _build(name, tok, text, tmp_path, **kw):
    seed_everything(0)
    return builder.build_pretraining(name, tok, tmp_path / f"corpus-{name}", [str(text)], model=kw.pop("model", ""),
                                     max_length=32, sentence_split="line", progress=False, **kw)


@pytest.mark.parametrize("name", list(builder.OBJECTIVES))
def test_each_preset_builds_what_its_row_says(name, tok, text, tmp_path):
    obj = builder.OBJECTIVES[name]
    small = "gpt-mini" if obj.causal else "bert-tiny"
    p = _build(name, tok, text, tmp_path, model=small)
    assert p.config.vocab_size == tok.vocab_size and p.config.max_position_embeddings >= 32
    if obj.causal:
        assert isinstance(p.model, CausalLMModel) and isinstance(p.dataset, PackedDataset)
        assert p.evaluator(p.dataset.corpus, n_examples=4) is None
    else:
        assert isinstance(p.model, PretrainingModel)
        assert isinstance(p.dataset, NSPDataset if obj.nsp else PackedDataset)
        assert (p.model.cls.seq_relationship is not None) == obj.nsp == (p.model.encoder.pooler is not None)
        assert (p.model.sbo is not None) == obj.sbo
        assert p.collate.masking.strategy == obj.masking
    batch = p.collate([p.dataset[i] for i in range(4)])
    out = p.model(batch)
    assert torch.isfinite(out["loss"])
    assert ("nsp_loss" in out) == obj.nsp and ("sbo_loss" in out) == obj.sbo
    folder = p.export(tmp_path / "model")
    arch = json.loads((folder / "config.json").read_text())["architectures"]
    assert arch == [obj.architecture or {"gpt2": "GPT2LMHeadModel"}[p.config.model_type]]


def test_the_cli_and_the_demo_take_their_presets_from_the_table():
    from transferlm.cli import pretrain
    from transferlm.demo import stages

    assert pretrain.PRESETS == tuple(builder.OBJECTIVES)
    assert stages.PRETRAIN_PRESET in builder.OBJECTIVES


def test_the_cli_build_is_the_builders(tok, text, tmp_path):
    """`transferlm pretrain`'s build(cfg) gives the model the builder gives for the same options:
    the same weights (same seed), data and masks."""
    from transferlm.cli.pretrain import PretrainConfig, build

    cfg = PretrainConfig(preset="spanbert", data=[str(text)], tokenizer=str(assets.path("minilm")), model="bert-tiny",
                         output=str(tmp_path / "cli"), max_length=32, sentence_split="line", progress_bar=False)
    model, dataset, collate, _, mc = build(cfg)
    p = _build("spanbert", tok, text, tmp_path, model="bert-tiny")
    a, b = model.state_dict(), p.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(dataset) == len(p.dataset) and mc == p.config
    x, y = collate([dataset[i] for i in range(3)]), p.collate([p.dataset[i] for i in range(3)])
    assert all(torch.equal(x[k], y[k]) for k in x)


def test_the_demos_random_init_baseline_has_the_pretrained_architecture(tok, tmp_path):
    """stage 3's "random init" row must be stage 2's architecture with fresh weights: the builder's
    model_config for the demo's preset, vocabulary and positions (one call, not a copy)."""
    from transferlm.demo import stages

    cfg = stages.DemoConfig(out=str(tmp_path), max_length=600)  # more positions than the preset has
    tok.save_pretrained(tmp_path / "tokenizer")
    clf = stages._classifier(cfg, "random", ["a", "b"])
    want = builder.model_config(builder.objective("bert"), cfg.model, tok.vocab_size, builder.special_ids(tok), 600)
    assert clf.encoder.config == want and want.max_position_embeddings == 600 and want.add_pooler


def test_heldout_evaluator_is_fixed_and_apart_from_training(tok, text, tmp_path):
    p = _build("bert", tok, text, tmp_path, model="bert-tiny")
    held = builder.token_corpus([str(text)], tmp_path / "held", tok, "line", progress=False)
    a, b = p.evaluator(held, n_examples=12, batch_size=5), p.evaluator(held, n_examples=12, batch_size=5)
    assert [x["labels"].shape[0] for x in a.batches] == [5, 5, 2]
    for x, y in zip(a.batches, b.batches):  # the same examples and masks each time
        assert all(torch.equal(x[k], y[k]) for k in x)
    # the draw follows the run's seed (examples and masks from seed + HELDOUT_SEED_OFFSET)
    p2 = _build("bert", tok, text, tmp_path, model="bert-tiny", seed=1)
    assert not torch.equal(p2.evaluator(held, n_examples=12, batch_size=5).batches[0]["labels"],
                           a.batches[0]["labels"])
    # the training collator is untouched by building the evaluator (it masks a deep copy)
    before = p.collate.generator.get_state()
    p.evaluator(held, n_examples=4)
    assert torch.equal(p.collate.generator.get_state(), before)
    with torch.no_grad():
        r = a(p.model.eval())
    assert 0.0 <= r["mlm_accuracy"] <= 1.0 and r["masked_tokens"] > 0


def test_bad_options_are_refused_before_the_corpus_is_written(tok, text, tmp_path):
    with pytest.raises(ValueError, match="preset must be one of bert, roberta, spanbert, gpt"):
        builder.objective("xlnet")
    with pytest.raises(ValueError, match="max_length 4 is smaller than the 5 tokens the bert preset needs"):
        builder.build_pretraining("bert", tok, tmp_path / "c", [str(text)], max_length=4)
    with pytest.raises(ValueError, match=r"max_length 4096 is more than the 512 positions of .*minilm"):
        builder.build_pretraining("roberta", tok, tmp_path / "c", [str(text)], init_from=str(assets.path("minilm")),
                                  max_length=4096)
    assert not (tmp_path / "c").exists()
