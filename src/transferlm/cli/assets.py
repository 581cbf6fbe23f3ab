"""`transferlm assets list|install|path`: the offline models and data sets."""

from __future__ import annotations

import argparse

from ..data import assets


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("assets", help="install and locate the built-in models and data sets")
    s = p.add_subparsers(dest="assets_cmd", required=True)
    s.add_parser("list", help="list the assets and whether each is installed").set_defaults(func=_list)
    i = s.add_parser("install", help="pip-install assets (no dependencies) and print where they are")
    i.add_argument("names", nargs="*", help="asset names (default: all)")
    i.set_defaults(func=_install)
    pa = s.add_parser("path", help="print where an asset's files are")
    pa.add_argument("name", choices=sorted(assets.ASSETS))
    pa.set_defaults(func=_path)


def _list(args: argparse.Namespace) -> int:
    for a in assets.ASSETS.values():
        try:
            where = str(assets.path(a.name))
        except assets.AssetMissing:
            where = "(not installed)"
        print(f"{a.name:8s} {a.package}=={a.version:8s} {where}\n         {a.description}")
    return 0


def _install(args: argparse.Namespace) -> int:
    for name in args.names or list(assets.ASSETS):
        assets.install(name)
        print(f"{name}: {assets.path(name)}")
    return 0


def _path(args: argparse.Namespace) -> int:
    print(assets.path(args.name))
    return 0
