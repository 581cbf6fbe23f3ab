"""The command list: every listed command has its module and appears in `transferlm --help`."""

import importlib
import subprocess
import sys

from transferlm import cli


def test_every_listed_command_exists_and_is_in_the_help():
    for name in cli.COMMANDS:
        mod = importlib.import_module(f"transferlm.cli.{name}")
        assert callable(mod.add_parser), name
    out = subprocess.run([sys.executable, "-m", "transferlm", "--help"], capture_output=True, text=True, check=True)
    listed = out.stdout.split("{", 1)[1].split("}", 1)[0].split(",")
    assert listed == cli.COMMANDS


def test_each_command_parses_its_help():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(cli.COMMANDS)
