"""Config files that mirror a command's flags: a YAML mapping whose keys are the flag names.

One loader for every command (litgpt's and nanoGPT's rule: an unknown key is an error, naming the
file and line). Values from the file come first, then the flags given on the command line
(None = not given); each value is checked against the dataclass field's type.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def load_dataclass_config(cls, path: str | Path | None, overrides: dict[str, Any]):
    """`cls(**values)` from the YAML file at `path` (keys = field names, '-' or '_'), then `overrides`."""
    values: dict[str, Any] = {}
    known = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    where = str(path) if path else "flags"
    if path:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise ValueError(f"{path}:{mark.line + 1 if mark else 1}: bad YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}:1: expected a mapping of option: value")
        lines = _key_lines(path)
        for key, value in raw.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ValueError(f"{path}:{lines.get(str(key), 1)}: unknown config key {key!r} "
                                 f"(known: {', '.join(sorted(known))})")
            values[name] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    for name, value in list(values.items()):
        values[name] = _check(where, name, hints[name], value)
    return cls(**values)


def _check(where: str, name: str, t: Any, value: Any) -> Any:
    """The value converted to the field's type (int -> float, one string -> [string]), or an error."""
    args = typing.get_args(t)
    if typing.get_origin(t) is list:  # list[str]: a single string is a one-element list
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: {name} must be a list of strings, got {value!r}")
        return value
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), t) if args else t
    if value is None and optional:
        return value
    ok = True
    if base is bool:
        ok = isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is str:
        ok = isinstance(value, (str, int)) and not isinstance(value, bool)
        value = str(value) if ok else value
    if not ok:
        raise ValueError(f"{where}: {name} must be {_TYPE_WORDS.get(base, getattr(base, '__name__', base))}, "
                         f"got {value!r}")
    return value


def _key_lines(path: Path) -> dict[str, int]:
    """Top-level key -> its line number in the YAML file (for error messages)."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line and not line[0].isspace() and ":" in line and not line.lstrip().startswith("#"):
            out.setdefault(line.split(":", 1)[0].strip().strip("'\""), lineno)
    return out
