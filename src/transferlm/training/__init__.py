"""Training: one model-agnostic loop (trainer.py), optimizer groups (optim.py), learning-rate
schedules (schedules.py), atomic checkpoints (checkpointing.py), metrics and plots (logging.py).
Task metrics live in metrics.py (fine-tuning)."""

from .checkpointing import atomic_write, latest_checkpoint, load_checkpoint, save_checkpoint
from .optim import GradualUnfreezing, build_optimizer, freeze, no_decay_names, param_groups, unfreeze
from .schedules import SlantedTriangular, WarmupDecay, build_scheduler
from .trainer import Trainer, TrainerConfig, seed_everything

__all__ = ["Trainer", "TrainerConfig", "seed_everything", "build_optimizer", "param_groups", "no_decay_names",
           "freeze", "unfreeze", "GradualUnfreezing", "build_scheduler", "WarmupDecay", "SlantedTriangular",
           "save_checkpoint", "load_checkpoint", "latest_checkpoint", "atomic_write"]
