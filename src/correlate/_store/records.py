"""The store's records as they are stored: registration records, placement declarations and
processing-history steps (JSON-ready dicts with id, time and software filled in)."""

from __future__ import annotations

import uuid
from typing import Any

from ..errors import ElementError
from ..io._atomic import from_jsonable, to_jsonable
from .rootdoc import now, software_version

__all__ = ["registration_record", "declaration_record", "history_step", "jsonable_copy"]


def jsonable_copy(obj: Any) -> Any:
    """A deep copy of ``obj`` as it reads back from the store's JSON."""
    return from_jsonable(to_jsonable(obj))


def registration_record(record: Any) -> dict:
    """A registration record ready to store: ``id``, ``created`` and ``software`` filled in if
    missing."""
    if not isinstance(record, dict):
        raise ElementError(f"a registration record is a dict, got {type(record).__name__}", field="record")
    rec = dict(record)
    rec.setdefault("id", uuid.uuid4().hex[:12])
    rec.setdefault("created", now())
    rec.setdefault("software", {"name": "correlate", "version": software_version()})
    return jsonable_copy(rec)


def declaration_record(name: str, entry: dict, *, reference: str, tre_nm: float | None, note: str,
                       implicit: bool, n_registrations: int) -> dict:
    """The declaration that element ``name``'s stored transform places it in ``reference``'s
    frame (see :func:`correlate._placement.declaration_record`), with id and time."""
    from .._placement import declaration_record as _declaration

    rec = _declaration(name, entry, reference=reference, tre_nm=tre_nm, note=note)
    rec.update(id=uuid.uuid4().hex[:12], created=now(), implicit=bool(implicit), n_registrations=n_registrations)
    return jsonable_copy(rec)


def history_step(step: Any) -> dict:
    """A processing step ready to store: ``time`` and ``software`` filled in if missing."""
    if not isinstance(step, dict):
        raise ElementError(f"a history step is a dict, got {type(step).__name__}", field="step")
    s = dict(step)
    s.setdefault("time", now())
    s.setdefault("software", f"correlate {software_version()}")
    return jsonable_copy(s)
