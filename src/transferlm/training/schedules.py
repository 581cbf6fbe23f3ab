"""Learning-rate schedules as LambdaLR multipliers of the peak learning rate.

- `WarmupDecay`: linear warmup from 0 to the peak over `warmup_steps`, then linear decay to
  `min_ratio` (BERT, Devlin et al. 2019 appendix A.2) or cosine decay (Loshchilov & Hutter 2017,
  without restarts) over the remaining steps.
- `SlantedTriangular`: ULMFiT's slanted triangular rate (Howard & Ruder 2018 eq. 3).

Each schedule is a small picklable object (its `__dict__` holds only numbers), so LambdaLR's
state_dict stores it and a checkpoint restores it with `torch.load(weights_only=True)`.
Step t counts optimizer steps from 0; the multiplier at t is used for the (t+1)-th update.

Does not: warm restarts, per-group schedules, or anything that reads the loss.
"""

from __future__ import annotations

import math

import torch


class WarmupDecay:
    """Multiplier at step t: t / warmup during warmup, then linear or cosine decay to min_ratio."""

    def __init__(self, warmup_steps: int, total_steps: int, decay: str = "linear", min_ratio: float = 0.0):
        if decay not in ("linear", "cosine", "constant"):
            raise ValueError(f"decay must be linear, cosine or constant, not {decay!r}")
        if total_steps < 1 or warmup_steps < 0 or warmup_steps > total_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps}), total >= 1")
        self.warmup_steps, self.total_steps, self.decay, self.min_ratio = warmup_steps, total_steps, decay, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / self.warmup_steps
        if self.decay == "constant":
            return 1.0
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        if self.decay == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_ratio + (1.0 - self.min_ratio) * shape


class SlantedTriangular:
    """ULMFiT (Howard & Ruder 2018) eq. 3, as a multiplier of eta_max:

        cut = floor(T * cut_frac)
        p   = t / cut                                   if t < cut
              1 - (t - cut) / (cut * (1 / cut_frac - 1))  otherwise
        eta_t = eta_max * (1 + p * (ratio - 1)) / ratio

    Defaults are the paper's: cut_frac = 0.1, ratio = 32.
    """

    def __init__(self, total_steps: int, cut_frac: float = 0.1, ratio: float = 32.0):
        if total_steps < 1 or not 0 < cut_frac < 1 or ratio < 1:
            raise ValueError("need total_steps >= 1, 0 < cut_frac < 1, ratio >= 1")
        self.total_steps, self.cut_frac, self.ratio = total_steps, cut_frac, ratio
        self.cut = max(1, math.floor(total_steps * cut_frac))

    def __call__(self, step: int) -> float:
        if step < self.cut:
            p = step / self.cut
        else:
            p = 1.0 - (step - self.cut) / (self.cut * (1.0 / self.cut_frac - 1.0))
        p = max(0.0, p)  # past T the paper's formula goes negative; hold at the floor eta_max / ratio
        return (1.0 + p * (self.ratio - 1.0)) / self.ratio


def build_scheduler(optimizer: torch.optim.Optimizer, name: str, *, total_steps: int, warmup_steps: int = 0,
                    min_ratio: float = 0.0, cut_frac: float = 0.1, ratio: float = 32.0) -> torch.optim.lr_scheduler.LambdaLR:
    """name: "linear" | "cosine" | "constant" (all with warmup) | "slanted_triangular"."""
    if name == "slanted_triangular":
        fn = SlantedTriangular(total_steps, cut_frac, ratio)
    elif name in ("linear", "cosine", "constant"):
        fn = WarmupDecay(warmup_steps, total_steps, name, min_ratio)
    else:
        raise ValueError(f"unknown schedule {name!r}: expected linear, cosine, constant or slanted_triangular")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
