"""Subcommands of the ``correlate`` command line, one module each (see :mod:`correlate.cli`)."""
