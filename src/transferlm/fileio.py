"""Atomic file writes, the one implementation the package uses (no torch here).

A file written with these is, at every instant, either the old file or the complete new one:
the bytes go to a temp file in the same folder, are fsync'ed, then `os.replace` renames it over
the target (atomic on POSIX) and the folder is fsync'ed so the rename itself survives a crash.
A failure removes the temp file and re-raises.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp_path) on a temporary file next to `path`, fsync it, then os.replace it in.

    `write` receives the temp file's path as a string, so any writer works (torch.save,
    safetensors' save_file, matplotlib's savefig, Path(tmp).write_text).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
