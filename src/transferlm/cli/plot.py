"""`transferlm plot RUN_DIR`: draw a run's loss (and accuracy) curves from metrics.jsonl to PNG."""

from __future__ import annotations

import argparse

from ..training.logging import plot_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw a run's loss curves to PNG")
    p.add_argument("run_dir", help="a run folder holding metrics.jsonl")
    p.add_argument("--out", help="PNG path (default: RUN_DIR/curves.png)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print(f"wrote {plot_run(args.run_dir, args.out)}")
    return 0
