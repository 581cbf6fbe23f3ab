"""Exact resume after SIGKILL: a run killed with `kill -9` mid-training and resumed logs exactly
the losses of a run that never stopped (model, optimizer, scheduler, python / numpy / torch RNG,
the collator's seed and the data position are all restored)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CHILD = textwrap.dedent('''
    import random, sys, time
    import numpy as np
    import torch, torch.nn as nn
    from transferlm.training import Trainer, TrainerConfig, seed_everything

    class Net(nn.Module):
        """Uses every random source the trainer must restore: torch (dropout), numpy and python."""
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Dropout(0.3), nn.LayerNorm(32), nn.Linear(32, 1))
        def forward(self, batch):
            time.sleep(float(sys.argv[2]))  # slow enough to be killed mid-run
            noise = float(np.random.randn()) * 1e-3 + random.random() * 1e-3
            pred = self.body(batch["x"]).squeeze(-1)
            return {"loss": ((pred - batch["y"]) ** 2).mean() + noise, "noise": torch.tensor(noise)}

    class Collate:
        """A collator with its own generator (like the MLM collator): the trainer re-seeds it."""
        def __init__(self):
            self.g = torch.Generator().manual_seed(0)
        def set_seed(self, seed):
            self.g.manual_seed(seed)
        def __call__(self, examples):
            x = torch.stack([e[0] for e in examples])
            return {"x": x + 0.01 * torch.randn(x.shape, generator=self.g), "y": torch.stack([e[1] for e in examples])}

    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, generator=g), torch.randn((), generator=g)) for _ in range(40)]
    seed_everything(0)
    model = Net()
    cfg = TrainerConfig(run_dir=sys.argv[1], max_steps=24, batch_size=8, grad_accum=2, lr=3e-3, warmup_steps=3,
                        schedule="cosine", log_every=1, save_every=4, progress_bar=False, seed=7)
    Trainer(model, data, Collate(), cfg).fit()
''')


def _losses(run_dir: Path) -> list[tuple[int, float, float]]:
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["step"], r["loss"], r["lr"]) for r in recs]


def _run(script: Path, run_dir: Path, sleep: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(run_dir), str(sleep)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.timeout(300)
def test_sigkill_and_resume_gives_the_same_losses(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    full, killed = tmp_path / "full", tmp_path / "killed"

    p = _run(script, full, 0.0)
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 0, out
    reference = _losses(full)
    assert [s for s, _, _ in reference] == list(range(1, 25))

    # Kill -9 once a checkpoint exists and a few steps past it are logged.
    p = _run(script, killed, 0.03)
    deadline = time.time() + 200
    while time.time() < deadline:
        latest = killed / "checkpoints" / "latest"
        if latest.exists() and (killed / "metrics.jsonl").exists():
            ckpt_step = int(latest.read_text().strip().split("_")[1])
            logged = len((killed / "metrics.jsonl").read_text().splitlines())
            if ckpt_step >= 8 and logged >= ckpt_step + 2:
                break
        if p.poll() is not None:
            pytest.fail("the child finished before it could be killed:\n" + p.stdout.read())
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    before = _losses(killed)
    ckpt_step = int((killed / "checkpoints" / "latest").read_text().strip().split("_")[1])
    assert before[-1][0] < 24, "killed too late: the run had finished"
    assert before[-1][0] > ckpt_step, "nothing was logged after the checkpoint: the resume proves little"

    p = _run(script, killed, 0.0)
    out, _ = p.communicate(timeout=240)
    assert p.returncode == 0, out
    assert f"resumed from step {ckpt_step}" in out
    assert _losses(killed) == reference  # exactly: same floats, same steps, same learning rates
