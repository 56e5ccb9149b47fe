"""Arguments several commands share."""

from __future__ import annotations

import argparse

__all__ = ["STORE_HELP", "add_store_argument"]

STORE_HELP = "a correlate store (.ome.zarr)"


def add_store_argument(parser: argparse.ArgumentParser, dest: str = "store", help: str = STORE_HELP) -> None:
    """The positional ``STORE`` argument (stored as ``dest``)."""
    parser.add_argument(dest, metavar="STORE", help=help)
