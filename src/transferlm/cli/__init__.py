"""The `transferlm` command: one subcommand module per job, each with `add_parser(sub)`.

Each module registers its parser and sets `func`, which takes the parsed arguments and returns
the exit code. Errors the user can fix (bad files, unknown options) are printed as one line.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `--help` lists them. Each must exist: a missing one is an
# ImportError, never a command silently left out of the list.
COMMANDS = ["assets", "tokenizer", "pretrain", "finetune", "evaluate", "predict", "embed", "generate", "prompt",
            "plot", "demo", "serve", "embeddings", "lm"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transferlm", description="Transfer learning with pretrained language "
                                     "models: tokenizers, pretraining, fine-tuning, embeddings.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"transferlm.cli.{name}").add_parser(sub)
    return parser


class UserError(Exception):
    """An error caused by the user's input: printed as one clear line, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"transferlm {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
