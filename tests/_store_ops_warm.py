"""Imported by the forkserver of the store tests: warm every operation up once."""

import _store_ops

_store_ops.warm()
