"""Early stopping on a dev score: keep the best weights, say when to stop, restore them at the end.

    stopper = EarlyStopping(patience=5)
    if stopper.update(dev_accuracy, step, model):   # after each dev evaluation
        trainer.request_stop()
    stopper.restore(model)                           # the weights of the best evaluation

The best weights are a CPU copy of `model.state_dict()` in memory; `state_dict()` /
`load_state_dict()` put them (and the counters) into the Trainer's checkpoint, so a resumed run
knows the best evaluation before the kill. Higher scores are better. A tie with the best score
replaces the kept weights (the later ones, trained longer: with few examples longer training
helps, Mosbach et al. 2021, "On the Stability of Fine-tuning BERT", sec. 6) but does not reset
the patience counter, so a dev score stuck at its maximum still ends the run.

What it does not: evaluate (the caller passes the score), or decide the budget of updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


@dataclass
class EarlyStopping:
    patience: int  # evaluations without a strict improvement that end the run (>= 1)
    best_score: float | None = None
    best_step: int = -1
    bad: int = 0  # evaluations since the last strict improvement
    best_state: dict[str, Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1 (evaluations), not {self.patience}")

    def update(self, score: float, step: int, model: nn.Module) -> bool:
        """Record one evaluation; True when `patience` evaluations in a row brought no gain."""
        score = float(score)
        if math.isnan(score):
            raise ValueError(f"step {step}: the dev score is NaN")
        better = self.best_score is None or score > self.best_score
        if better or score == self.best_score:
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best_step = step
        if better:
            self.best_score, self.bad = score, 0
        else:
            self.bad += 1
        return self.bad >= self.patience

    def restore(self, model: nn.Module) -> bool:
        """Load the best evaluation's weights into `model`; False when nothing was evaluated."""
        if self.best_state is None:
            return False
        model.load_state_dict(self.best_state, strict=True)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"patience": self.patience, "best_score": self.best_score, "best_step": self.best_step,
                "bad": self.bad, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best_step = state["best_score"], int(state["best_step"])
        self.bad, self.best_state = int(state["bad"]), state["best_state"]
