"""The fine-tuning budget (updates that scale with the data) and early stopping on a dev set."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from transferlm.data import assets
from transferlm.data.finetune_collate import BucketedBatches
from transferlm.pipelines import TextClassifier
from transferlm.pipelines.base import FitConfig, training_budget
from transferlm.training.early_stopping import EarlyStopping

pytestmark = pytest.mark.usefixtures("one_thread")


def _per_epoch(n: int, batch_size: int = 16) -> int:
    return len(BucketedBatches([{"input_ids": [1] * (1 + i % 7)} for i in range(n)], batch_size))


def test_budget_scales_with_the_data():
    fit = FitConfig(epochs=4.0)
    # all 1,780 BBC training articles: 112 batches of 16; 4 epochs = 448 updates, the same as the
    # old rule max(ceil(4 * 112), min(60, 50 * 112)) gave, so the all-data result is unchanged
    per = _per_epoch(1780)
    assert per == 112
    assert training_budget(fit, per) == (448, 112)  # dev scored once per epoch
    assert max(math.ceil(4 * per), min(60, 50 * per)) == 448
    # 10 per class (50 articles): 4 batches an epoch; the floor of 200 updates, ~20 evaluations
    assert _per_epoch(50) == 4
    assert training_budget(fit, 4) == (200, 10)
    # 3 examples: the floor is capped at 100 passes
    assert training_budget(fit, 1) == (100, 5)
    assert training_budget(FitConfig(epochs=4.0, max_steps=30), 4) == (30, 4)
    assert training_budget(FitConfig(epochs=4.0, min_steps=0), 4) == (16, 4)
    assert training_budget(FitConfig(epochs=4.0, eval_every=3), 4) == (200, 3)
    for bad in (dict(patience=-1), dict(max_steps=0), dict(eval_every=0), dict(min_steps=-2)):
        with pytest.raises(ValueError):
            FitConfig(**bad)


def test_early_stopping_keeps_the_best_and_counts_patience():
    model = nn.Linear(2, 1)
    stop = EarlyStopping(patience=2)
    weights = {}
    decisions = []
    for step, score in [(1, 0.5), (2, 0.7), (3, 0.6), (4, 0.7), (5, 0.6)]:
        with torch.no_grad():
            model.weight.fill_(float(step))  # the weights "of step s" are all s
        weights[step] = model.weight.clone()
        decisions.append(stop.update(score, step, model))
    # 0.6 and 0.7 (a tie) after the best are two evaluations without a strict gain: stop there;
    # the tie moved the kept weights to step 4 (the later, longer-trained ones)
    assert decisions == [False, False, False, True, True]
    assert stop.best_score == 0.7 and stop.best_step == 4
    stop.restore(model)
    assert torch.equal(model.weight, weights[4])
    again = EarlyStopping(patience=2)
    again.load_state_dict(stop.state_dict())
    assert again.best_step == 4 and again.bad == 3 and torch.equal(again.best_state["weight"], weights[4])
    with pytest.raises(ValueError, match="NaN"):
        stop.update(float("nan"), 6, model)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


@pytest.fixture(scope="module")
def bbc_small():
    data = assets.bbc_news()
    random.Random(1).shuffle(data)
    labels = sorted({y for _, y in data})
    per = {lab: [x for x in data if x[1] == lab] for lab in labels}
    train = [x for lab in labels for x in per[lab][:3]]
    dev = [x for lab in labels for x in per[lab][3:6]]
    return labels, train, dev


def _fit(labels, train, dev, out_dir, **opts):
    clf = TextClassifier.new("minilm", labels=labels, max_length=32)
    hist = clf.fit([t for t, _ in train], [y for _, y in train],
                   dev=([t for t, _ in dev], [y for _, y in dev]) if dev else None,
                   batch_size=8, lr=3e-4, progress=False, out_dir=str(out_dir), **opts)
    return clf, hist


def test_fit_stops_early_restores_best_and_resumes_stopped(bbc_small, tmp_path):
    labels, train, dev = bbc_small
    opts = dict(max_steps=40, eval_every=2, patience=2)
    clf, hist = _fit(labels, train, dev, tmp_path / "run", **opts)
    evals, end = hist[:-1], hist[-1]
    scores = [r["accuracy"] for r in evals]
    assert [r["step"] for r in evals] == list(range(2, 2 * len(evals) + 1, 2))
    assert end["budget"] == 40 and end["stopped_at"] is not None and end["stopped_at"] < 40
    assert end["step"] == end["stopped_at"] == evals[-1]["step"]
    # the stop came `patience` evaluations after the last strict gain
    first_best = scores.index(max(scores))
    assert len(scores) - 1 - first_best >= 2 and max(scores[-2:]) <= max(scores[:-2])
    # kept: the last evaluation with the best score; the model now has its weights
    best_step = max(r["step"] for r in evals if r["accuracy"] == max(scores))
    assert end["best_step"] == best_step
    d_texts, d_labels = [t for t, _ in dev], [y for _, y in dev]
    assert clf.evaluate(d_texts, d_labels)["accuracy"] == max(scores)
    if best_step != end["step"]:  # the restored weights are not the last ones
        log = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert max(r["step"] for r in log) == end["step"]
    proba = clf.predict_proba(d_texts)

    # the same command again: resumes the stopped run, trains no further, ends on the same weights
    # (the kept best comes back from the checkpoint, not from this fresh object's memory)
    again, hist2 = _fit(labels, train, dev, tmp_path / "run", **opts)
    assert hist2[-1]["stopped_at"] == end["stopped_at"] and hist2[-1]["best_step"] == best_step
    assert np.array_equal(again.predict_proba(d_texts), proba)


def test_without_dev_the_budget_alone(bbc_small, tmp_path):
    labels, train, _ = bbc_small
    _, hist = _fit(labels, train, None, tmp_path / "nodev", epochs=1.0, min_steps=6)
    assert len(hist) == 1 and hist[0]["step"] == hist[0]["budget"] == 6 and hist[0]["stopped_at"] is None
    _, hist = _fit(labels, train, bbc_small[2], tmp_path / "off", max_steps=6, eval_every=2, patience=0)
    assert [r["step"] for r in hist] == [2, 4, 6, 6] and hist[-1]["stopped_at"] is None
