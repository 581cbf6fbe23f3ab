"""Atomic checkpoints and the random-number state, for exact resume.

A checkpoint is a folder `step_00000120/` holding
- `model.safetensors`: the weights (tied tensors stored once, re-tied on load: safetensors'
  save_model / load_model);
- `state.pt`: everything else (optimizer, scheduler, step, data position, RNG states, the
  collator's generator), only tensors / numbers / strings / lists / dicts, so that
  `torch.load(weights_only=True)` reads it.
Every file is written to a temporary name in the same folder, flushed, fsync'ed and moved into
place with os.replace; the folder itself is built under a temporary name and renamed the same way,
and `latest` (a one-line text file naming the newest checkpoint) is replaced last. A reader
therefore sees either the old checkpoint or the complete new one, never a partial file, even if
the process is killed with SIGKILL in the middle of a save.

Does not: shard weights (one file per checkpoint), or save to remote storage.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_model, save_model

from ..fileio import atomic_write, atomic_write_text, fsync_dir

LATEST = "latest"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_save_model(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    atomic_write(path, lambda tmp: save_model(model, tmp, metadata=metadata))


# --------------------------------------------------------------------------------------- RNG state

def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states, in weights_only-loadable types."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "mt": list(mt), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["mt"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------- checkpoints

def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(root: str | os.PathLike, step: int, model: nn.Module, state: dict[str, Any],
                    keep_last: int | None = None) -> Path:
    """Write root/step_<8-digit step>/{model.safetensors,state.pt} atomically and point root/latest at it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        atomic_save_model(model, tmp / "model.safetensors")
        atomic_torch_save(state, tmp / "state.pt")
        old = None
        if final.exists():  # re-saving a step: move the old one aside first (os.replace needs an empty target)
            old = root / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, final.name + "\n")
    if keep_last:
        for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The checkpoint `latest` names, or None when there is none yet."""
    root = Path(root)
    pointer = root / LATEST
    if not pointer.exists():
        return None
    path = root / pointer.read_text(encoding="utf-8").strip()
    if not (path / "model.safetensors").exists() or not (path / "state.pt").exists():
        raise FileNotFoundError(f"{pointer}: names {path.name}, which is not a complete checkpoint")
    return path


def load_checkpoint(path: str | os.PathLike, model: nn.Module, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load the weights into `model` (strict) and return the rest of the state."""
    path = Path(path)
    check_compatible(path, model)
    try:
        load_model(model, str(path / "model.safetensors"), strict=True, device=str(map_location))
    except RuntimeError as e:  # what the shape / name check above cannot see (e.g. tying differs)
        raise ValueError(f"{path / 'model.safetensors'}: does not fit this model ({e})") from None
    return torch.load(path / "state.pt", map_location=map_location, weights_only=True)


def check_compatible(path: str | os.PathLike, model: nn.Module) -> None:
    """Raise a ValueError naming the checkpoint when its tensors are not this model's (another config).

    Compares names and shapes from the safetensors header (nothing is loaded). Names the model has
    but the file lacks are allowed when they are tied to a tensor the file has (safetensors stores
    a shared tensor once).
    """
    from safetensors import safe_open

    file = Path(path) / "model.safetensors"
    if not file.is_file():
        raise ValueError(f"{path}: not a checkpoint (no model.safetensors)")
    with safe_open(str(file), framework="pt") as f:
        saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    own = {k: tuple(v.shape) for k, v in model.state_dict(keep_vars=True).items()}
    by_storage: dict[int, list[str]] = {}
    for k, v in model.state_dict(keep_vars=True).items():
        by_storage.setdefault(v.data_ptr(), []).append(k)
    problems = [f"{k}: checkpoint {list(saved[k])}, model {list(own[k])}" for k in saved if k in own and saved[k] != own[k]]
    problems += [f"{k}: in the checkpoint, not in the model" for k in saved if k not in own]
    tied_ok = {k for names in by_storage.values() if any(n in saved for n in names) for k in names}
    problems += [f"{k}: in the model, not in the checkpoint" for k in own if k not in saved and k not in tied_ok]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError(f"{file}: written for a different model configuration: {'; '.join(problems[:5])}{more}. "
                         "Resume with the configuration that wrote it, or start a new run (another output "
                         "folder, or resume off)")
