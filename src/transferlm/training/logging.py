"""Run logging: metrics as JSON lines, a progress bar, and loss curves drawn to PNG.

- `MetricsLog`: appends one JSON object per line to RUN_DIR/metrics.jsonl, flushed at once (a run
  killed at any moment leaves whole lines; a resumed run truncates lines past its checkpoint).
- `progress`: a tqdm bar showing loss, tokens/s and the ETA.
- `read_metrics` / `plot_run`: the curves of every "*loss*" key (and accuracies on a second
  figure) against the step, drawn with matplotlib's Agg backend (no display needed).

Does not: talk to experiment trackers (W&B, TensorBoard); the JSON lines are easy to import there.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

METRICS_FILE = "metrics.jsonl"


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class MetricsLog:
    """Append-only JSON lines; `truncate_after(step)` drops records of steps past a resumed checkpoint."""

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")
            f.flush()

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        keep = [r for r in read_metrics(self.path.parent, strict=False) if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


def read_metrics(run_dir: str | os.PathLike, strict: bool = True) -> list[dict[str, Any]]:
    """The records of RUN_DIR/metrics.jsonl. A bad line is an error naming the file and line, except
    a torn last line when strict=False (what SIGKILL can leave)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics file (is {run_dir} a run directory?)")
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if not strict and i == len(lines):
                break
            raise ValueError(f"{path}:{i}: expected one JSON object per line ({e.msg})") from None
    return out


def progress(total: int, initial: int = 0, enabled: bool = True, desc: str = "train") -> tqdm:
    """A step progress bar; the trainer sets its postfix to loss and tokens/s (tqdm gives the ETA)."""
    return tqdm(total=total, initial=initial, disable=not enabled, desc=desc, unit="step", dynamic_ncols=True)


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw the loss curves (and accuracies, if any) of a run to PNG; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_metrics(run_dir, strict=False) if "step" in r]
    if not records:
        raise ValueError(f"{Path(run_dir) / METRICS_FILE}: no records with a step to plot")
    keys = sorted({k for r in records for k, v in r.items() if isinstance(v, (int, float)) and k != "step"})
    loss_keys = [k for k in keys if "loss" in k]
    acc_keys = [k for k in keys if "acc" in k]
    if not loss_keys:
        raise ValueError(f"{Path(run_dir) / METRICS_FILE}: no loss values to plot (keys: {keys})")
    panels = [("loss", loss_keys)] + ([("accuracy", acc_keys)] if acc_keys else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, ks) in zip(axes[0], panels):
        for k in ks:
            pts = [(r["step"], r[k]) for r in records if isinstance(r.get(k), (int, float))]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k, marker="." if len(pts) < 50 else None)
        ax.set_xlabel("step")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(Path(run_dir).name)
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
