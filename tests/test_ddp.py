"""DDP with no code change: `torchrun --nproc_per_node 2` on CPU (gloo) gives the same final
weights as one process with the same global batch (and the same loss curve)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

CHILD = textwrap.dedent('''
    import sys
    import torch, torch.nn as nn
    from transferlm.training import Trainer, TrainerConfig, seed_everything

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.LayerNorm(16), nn.Linear(16, 3))
        def forward(self, batch):
            logits = self.body(batch["x"])
            return {"loss": nn.functional.cross_entropy(logits, batch["y"])}

    def collate(examples):
        return {"x": torch.stack([e[0] for e in examples]), "y": torch.stack([e[1] for e in examples])}

    g = torch.Generator().manual_seed(3)
    data = [(torch.randn(6, generator=g), torch.randint(3, (), generator=g)) for _ in range(64)]
    seed_everything(0)
    model = Net()
    cfg = TrainerConfig(run_dir=sys.argv[1], max_steps=12, batch_size=16, grad_accum=2, lr=1e-2,
                        log_every=1, progress_bar=False, seed=5, max_grad_norm=0.5)
    Trainer(model, data, collate, cfg).fit()
''')


def _final(run_dir):
    ckpt = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
    return load_file(str(ckpt / "model.safetensors"))


@pytest.mark.timeout(300)
def test_two_processes_equal_one(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    one, two = tmp_path / "one", tmp_path / "two"
    r = subprocess.run([sys.executable, str(script), str(one)], capture_output=True, text=True, timeout=200)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), str(two)], capture_output=True, text=True, timeout=200,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]

    w1, w2 = _final(one), _final(two)
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")
    # the weights moved (the comparison is not between two untouched initialisations)
    seed_losses = [json.loads(line)["loss"] for line in (one / "metrics.jsonl").read_text().splitlines()]
    ddp_losses = [json.loads(line)["loss"] for line in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(seed_losses) == len(ddp_losses) == 12
    assert seed_losses[-1] < seed_losses[0]
    torch.testing.assert_close(torch.tensor(ddp_losses), torch.tensor(seed_losses), rtol=1e-5, atol=1e-6)
