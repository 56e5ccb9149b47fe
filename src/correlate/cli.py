"""The ``correlate`` command line: a thin layer over the public API.

Each subcommand lives in its own module in :mod:`correlate._cli` with ``NAME``, ``HELP``,
``ORDER``, ``add_arguments(parser)`` and ``run(args) -> int``; they are discovered here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .errors import CorrelateError


def _commands():
    from . import _cli

    mods = []
    for m in pkgutil.iter_modules(_cli.__path__):
        if m.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"{_cli.__name__}.{m.name}"))
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``correlate`` command (also used to generate the CLI docs)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="correlate",
        description="Correlative microscopy: import, register and join SMLM, SIM/STED, EM and AFM "
        "data in one OME-Zarr scene, in nanometres.",
    )
    parser.add_argument("--version", action="version", version=f"correlate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``correlate`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CorrelateError as exc:
        print(f"correlate {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # an output file that cannot be written, a full disk...
        print(f"correlate {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
