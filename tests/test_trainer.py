"""The shared trainer and its parts: schedules, optimizer groups, freezing, atomic checkpoints,
accumulation, logging and plots. (Exact resume: test_resume.py; DDP: test_ddp.py.)"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

from transferlm.training import (GradualUnfreezing, SlantedTriangular, Trainer, TrainerConfig, WarmupDecay,
                                 build_optimizer, build_scheduler, freeze, latest_checkpoint, load_checkpoint,
                                 no_decay_names, param_groups, save_checkpoint, seed_everything, unfreeze)
from transferlm.training.checkpointing import atomic_write
from transferlm.training.logging import plot_run, read_metrics


# ---------------------------------------------------------------------------------------- schedules

def test_linear_warmup_then_linear_decay_values():
    s = WarmupDecay(warmup_steps=10, total_steps=110, decay="linear")
    assert [s(t) for t in (0, 5, 10, 60, 110, 200)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    floor = WarmupDecay(0, 100, "linear", min_ratio=0.1)
    assert floor(50) == pytest.approx(0.55) and floor(100) == pytest.approx(0.1)


def test_cosine_decay_values():
    s = WarmupDecay(warmup_steps=10, total_steps=110, decay="cosine")
    assert s(10) == 1.0
    assert s(60) == pytest.approx(0.5)  # half-way: cos(pi / 2)
    assert s(35) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert s(110) == pytest.approx(0.0)


def test_slanted_triangular_matches_ulmfit_eq3():
    # T = 1000, cut_frac = 0.1 -> cut = 100; ratio 32
    s = SlantedTriangular(1000, cut_frac=0.1, ratio=32)
    assert s(0) == pytest.approx(1 / 32)  # eta_max / ratio
    assert s(50) == pytest.approx((1 + 0.5 * 31) / 32)
    assert s(100) == pytest.approx(1.0)  # the peak at the cut
    # p = 1 - (t - cut) / (cut * (1 / cut_frac - 1)) = 1 - 450 / 900 = 0.5 at t = 550
    assert s(550) == pytest.approx((1 + 0.5 * 31) / 32)
    assert s(1000) == pytest.approx(1 / 32)


def test_scheduler_drives_the_optimizer():
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=1.0)
    sch = build_scheduler(opt, "linear", total_steps=4, warmup_steps=2)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs == [0.0, 0.5, 1.0, 0.5]
    with pytest.raises(ValueError, match="unknown schedule"):
        build_scheduler(opt, "step", total_steps=4)


# ---------------------------------------------------------------------------------------- optimizer

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)


class Toy(nn.Module):
    def __init__(self, n_layers=2):
        super().__init__()
        self.embeddings = nn.Embedding(10, 4)
        self.layer = nn.ModuleList([Block() for _ in range(n_layers)])
        self.head = nn.Linear(4, 2)

    def forward(self, batch):
        h = self.embeddings(batch["x"]).mean(1)
        for blk in self.layer:
            h = blk.norm(h + torch.tanh(blk.attn(h)))
        return {"loss": nn.functional.cross_entropy(self.head(h), batch["y"])}


def test_no_weight_decay_on_biases_and_norms():
    m = Toy()
    nd = no_decay_names(m)
    assert nd == {"layer.0.attn.bias", "layer.0.norm.weight", "layer.0.norm.bias", "layer.1.attn.bias",
                  "layer.1.norm.weight", "layer.1.norm.bias", "head.bias"}
    opt = build_optimizer(m, lr=1e-3, weight_decay=0.1)
    by_param = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    for name, p in m.named_parameters():
        assert by_param[id(p)] == (0.0 if name in nd else 0.1), name


def test_weight_decay_really_skips_biases():
    # with a zero gradient AdamW only decays: weights shrink, biases and norm weights stay
    m = Toy()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = build_optimizer(m, lr=0.1, weight_decay=0.5)
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = m.state_dict()
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert torch.equal(after["head.bias"], before["head.bias"])
    assert torch.equal(after["layer.0.norm.weight"], before["layer.0.norm.weight"])


def test_layerwise_lr_decay():
    m = Toy(n_layers=2)
    groups = param_groups(m, lr=1.0, weight_decay=0.0, layer_decay=0.5, num_layers=2)
    lr_of = {n: g["lr"] for g in groups for n in g["names"]}
    assert lr_of["head.weight"] == 1.0  # layer L + 1
    assert lr_of["layer.1.attn.weight"] == 0.5
    assert lr_of["layer.0.attn.weight"] == 0.25
    assert lr_of["embeddings.weight"] == 0.125  # layer 0: decay^(L + 1)


def test_freeze_and_gradual_unfreezing():
    m = Toy(n_layers=2)
    assert freeze(m, ["embeddings"]) == 1 and not m.embeddings.weight.requires_grad
    unfreeze(m)
    with pytest.raises(ValueError, match="no parameter"):
        freeze(m, ["decoder"])
    gu = GradualUnfreezing(m, ["embeddings", "layer.0", "layer.1", "head"])
    trainable = lambda: sorted({n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("layer") else "")  # noqa: E731
                                for n, p in m.named_parameters() if p.requires_grad})
    gu(0)
    assert trainable() == ["head"]
    gu(1)
    assert trainable() == ["head", "layer.1"]
    gu(5)
    assert trainable() == ["embeddings", "head", "layer.0", "layer.1"]


# ---------------------------------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_with_tied_weights(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 3)
            self.out = nn.Linear(3, 5, bias=False)
            self.out.weight = self.emb.weight

    a = Tied()
    save_checkpoint(tmp_path, 7, a, {"step": 7, "x": torch.arange(3)})
    b = Tied()
    state = load_checkpoint(latest_checkpoint(tmp_path), b)
    assert state["step"] == 7 and torch.equal(state["x"], torch.arange(3))
    assert torch.equal(b.emb.weight, a.emb.weight) and b.out.weight is b.emb.weight


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "state.pt"
    atomic_write(target, lambda tmp: open(tmp, "wb").write(b"old complete"))

    def crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, crash)
    assert target.read_bytes() == b"old complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def test_sigkill_during_a_write_never_exposes_a_partial_file(tmp_path):
    target = tmp_path / "model.safetensors"
    atomic_write(target, lambda tmp: open(tmp, "wb").write(b"A" * 1000))
    child = textwrap.dedent(f'''
        import time
        from transferlm.training.checkpointing import atomic_write
        def slow(tmp):
            with open(tmp, "wb") as f:
                f.write(b"B" * 500)
                f.flush()
                open({str(tmp_path / "started")!r}, "w").close()
                time.sleep(60)
                f.write(b"B" * 500)
        atomic_write({str(target)!r}, slow)
    ''')
    p = subprocess.Popen([sys.executable, "-c", child])
    deadline = time.time() + 60
    while not (tmp_path / "started").exists() and time.time() < deadline:
        time.sleep(0.02)
    assert (tmp_path / "started").exists()
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert target.read_bytes() == b"A" * 1000  # the old file, whole
    leftovers = [q.name for q in tmp_path.iterdir() if q.name not in ("model.safetensors", "started")]
    assert all(n.startswith(".model.safetensors.") and n.endswith(".tmp") for n in leftovers), leftovers


def test_latest_only_names_complete_checkpoints(tmp_path):
    m = Toy()
    save_checkpoint(tmp_path, 1, m, {"step": 1})
    save_checkpoint(tmp_path, 2, m, {"step": 2})
    save_checkpoint(tmp_path, 3, m, {"step": 3}, keep_last=2)
    assert latest_checkpoint(tmp_path).name == "step_00000003"
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000002", "step_00000003"]
    (tmp_path / "latest").write_text("step_00000009\n")
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        latest_checkpoint(tmp_path)


# ---------------------------------------------------------------------------------------- the loop

def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randint(0, 10, (n, 5), generator=g)
    return [{"x": x, "y": (x.sum() % 2)} for x in xs]


def _collate(examples):
    return {"x": torch.stack([e["x"] for e in examples]), "y": torch.stack([e["y"] for e in examples]),
            "attention_mask": torch.ones(len(examples), 5, dtype=torch.long)}


def _train(tmp_path, name, **kw):
    seed_everything(0)
    m = Toy()
    cfg = TrainerConfig(run_dir=str(tmp_path / name), progress_bar=False, lr=1e-2, **kw)
    last = Trainer(m, _data(), _collate, cfg).fit()
    return m, last


def test_accumulation_equals_one_big_batch(tmp_path):
    m1, _ = _train(tmp_path, "one", max_steps=6, batch_size=16, grad_accum=1, log_every=1)
    m4, _ = _train(tmp_path, "four", max_steps=6, batch_size=16, grad_accum=4, log_every=1)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m4.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


def test_metrics_checkpoints_and_plot(tmp_path):
    m, last = _train(tmp_path, "run", max_steps=30, batch_size=8, log_every=5, save_every=10, schedule="cosine",
                     warmup_steps=3)
    run = tmp_path / "run"
    recs = read_metrics(run)
    assert [r["step"] for r in recs] == [5, 10, 15, 20, 25, 30]
    assert {"loss", "lr", "tokens_per_s", "grad_norm"} <= set(recs[0])
    assert recs[0]["tokens_per_s"] > 0
    sched = WarmupDecay(3, 30, "cosine")  # the logged lr is the one the step's update used
    assert [r["lr"] for r in recs] == pytest.approx([1e-2 * sched(r["step"] - 1) for r in recs])
    assert recs[-1]["loss"] < recs[0]["loss"]
    assert latest_checkpoint(run / "checkpoints").name == "step_00000030"
    weights = load_file(str(run / "checkpoints" / "step_00000030" / "model.safetensors"))
    torch.testing.assert_close(weights["head.weight"], m.head.weight.detach())
    png = plot_run(run)
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gradual_unfreezing_through_on_epoch(tmp_path):
    seed_everything(0)
    m = Toy()
    start = {k: v.clone() for k, v in m.state_dict().items()}
    gu = GradualUnfreezing(m, ["embeddings", "layer.0", "layer.1", "head"])
    seen = []
    cfg = TrainerConfig(run_dir=str(tmp_path / "gu"), progress_bar=False, lr=1e-2, max_steps=8, batch_size=16,
                        log_every=4, weight_decay=0.0)
    Trainer(m, _data(), _collate, cfg, on_epoch=lambda e: (seen.append(e), gu(e))).fit()  # 4 steps per epoch
    assert seen == [0, 1]
    changed = {k for k, v in m.state_dict().items() if not torch.equal(v, start[k])}
    assert any(k.startswith("head") for k in changed) and any(k.startswith("layer.1") for k in changed)
    assert not any(k.startswith(("layer.0", "embeddings")) for k in changed)


def _parity_of_first(n=64, seed=0):
    """A task Toy learns in a few dozen steps: y = 1 when the first digit is 5 or more."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.randint(0, 10, (n, 5), generator=g)
    return [{"x": x, "y": (x[0] >= 5).long()} for x in xs]


def test_bf16_autocast_runs_matmuls_in_bf16_and_tracks_fp32(tmp_path):
    """precision="bf16" on CPU: the linear layers really compute in bf16 (seen by a forward hook),
    the weights stay fp32, the first loss equals the fp32 loss of the same weights and batch
    within bf16 rounding (8-bit mantissa) without being bit-identical, and training lowers the
    loss along the fp32 run's curve."""
    runs = {}
    for prec in ("fp32", "bf16"):
        seed_everything(0)
        m = Toy()
        seen: set[torch.dtype] = set()
        for mod in m.modules():
            if isinstance(mod, nn.Linear):
                mod.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
        cfg = TrainerConfig(run_dir=str(tmp_path / prec), progress_bar=False, lr=3e-2, max_steps=40, batch_size=16,
                            log_every=1, precision=prec, weight_decay=0.0)
        trainer = Trainer(m, _parity_of_first(), _collate, cfg)
        last = trainer.fit()
        assert math.isfinite(last["loss"])
        losses = [r["loss"] for r in read_metrics(tmp_path / prec) if "loss" in r]
        assert len(losses) == 40
        runs[prec] = (trainer.use_bf16, seen, {p.dtype for p in m.parameters()}, losses)
    assert runs["fp32"][:3] == (False, {torch.float32}, {torch.float32})
    use_bf16, seen, param_dtypes, bf16 = runs["bf16"]
    assert use_bf16 and seen == {torch.bfloat16}, seen  # every matmul ran in bf16
    assert param_dtypes == {torch.float32}  # autocast, not a bf16 model: the update is on fp32 weights
    fp32 = runs["fp32"][3]
    # step 1: the same initial weights and the same batch in both runs
    assert bf16[0] != fp32[0]  # really a different arithmetic
    assert bf16[0] == pytest.approx(fp32[0], rel=1e-2)  # bf16's relative rounding is 2^-8 ~ 0.4% per op
    assert max(abs(a - b) for a, b in zip(bf16, fp32)) < 0.05  # the whole curve tracks the fp32 one
    assert sum(bf16[-5:]) / 5 < sum(bf16[:5]) / 5 - 0.05  # and it learns (0.72 -> 0.61 here)


def test_bad_batch_and_config(tmp_path):
    with pytest.raises(ValueError, match="not divisible"):
        Trainer(Toy(), _data(), _collate, TrainerConfig(run_dir=str(tmp_path), batch_size=10, grad_accum=3))
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(Toy(), _data(4), _collate, TrainerConfig(run_dir=str(tmp_path), batch_size=8))
    with pytest.raises(ValueError, match="precision"):
        TrainerConfig(precision="fp8")


def test_read_metrics_names_a_bad_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\nnot json\n{"step": 2, "loss": 1.0}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2"):
        read_metrics(tmp_path)
    # a line torn by SIGKILL at the very end is tolerated when asked
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert read_metrics(tmp_path, strict=False) == [{"step": 1, "loss": 2.0}]


def test_eval_at_start_every_n_and_at_the_end(tmp_path):
    calls = []

    def eval_fn(model):
        assert not model.training  # evaluated in eval mode, then put back
        calls.append(1)
        return {"score": float(len(calls))}

    seed_everything(0)
    cfg = TrainerConfig(run_dir=str(tmp_path / "ev"), progress_bar=False, max_steps=7, batch_size=8, log_every=7,
                        eval_every=3, eval_at_start=True)
    trainer = Trainer(Toy(), _data(), _collate, cfg, eval_fn=eval_fn)
    trainer.fit()
    assert trainer.model.training
    evals = [(r["step"], r["eval_score"]) for r in read_metrics(tmp_path / "ev") if "eval_score" in r]
    assert evals == [(0, 1.0), (3, 2.0), (6, 3.0), (7, 4.0)]


def test_checkpoint_of_another_model_is_refused_by_name(tmp_path):
    save_checkpoint(tmp_path, 3, nn.Linear(4, 2), {"step": 3})
    path = latest_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"step_00000003/model\.safetensors: written for a different model "
                                         r"configuration: bias: checkpoint \[2\], model \[3\]; weight: checkpoint \[2, 4\], model \[3, 4\]"):
        load_checkpoint(path, nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"bias: in the model, not in the checkpoint"):
        save_checkpoint(tmp_path / "nobias", 1, nn.Linear(4, 2, bias=False), {"step": 1})
        load_checkpoint(latest_checkpoint(tmp_path / "nobias"), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="not a checkpoint"):
        load_checkpoint(tmp_path, nn.Linear(4, 2))
