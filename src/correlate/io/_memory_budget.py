"""The memory budget of a job: from the caller, or from the machine's available memory.

A budget decides whether a table is imported in memory or streamed, and how many rows a
streamed pass holds at once. It is parsed from ``"4GiB"``, ``"800M"``, ``"2e9"`` (bytes) or a
number of bytes, and recorded with its source (``"user"`` or ``"estimated"``) so the command line
can print it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import CorrelateError

__all__ = ["MemoryBudget", "memory_budget", "parse_bytes", "available_memory", "IN_MEMORY_FACTOR"]

#: Peak memory of an in-memory import per byte of column data (measured: 2e7 rows of 9 float64
#: columns took 4.2 GiB, 5x the column data; 6 leaves room for the caller's own copies).
IN_MEMORY_FACTOR = 6.0
#: Share of the available memory a job takes when the caller names no budget.
AVAILABLE_SHARE = 0.5

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 1024**2,
          "g": 1e9, "gb": 1e9, "gib": 1024**3, "t": 1e12, "tb": 1e12, "tib": 1024**4}


def parse_bytes(value: str | float | int) -> int:
    """Bytes from ``4GiB``, ``800M``, ``2e9`` or a number.

    Raises
    ------
    CorrelateError
        For an unreadable or non-positive size (field ``memory_budget``).
    """
    if isinstance(value, (int, float)):
        n = float(value)
    else:
        m = re.fullmatch(r"\s*([0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise CorrelateError(f"memory budget {value!r} is not a size like 4GiB, 800MB or 2e9 (bytes)",
                                 field="memory_budget")
        n = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not n > 0 or n != n:
        raise CorrelateError(f"memory budget must be a positive size, got {value!r}", field="memory_budget")
    return int(n)


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` of /proc/meminfo, else psutil).

    Raises
    ------
    CorrelateError
        When neither source answers; pass a budget (``memory_budget=`` / ``--memory-budget``).
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception as exc:  # noqa: BLE001 - no psutil, or it cannot read the machine
        raise CorrelateError("cannot tell the machine's available memory; pass memory_budget= "
                             "(--memory-budget), e.g. 4GiB", field="memory_budget") from exc


@dataclass(frozen=True)
class MemoryBudget:
    """A memory budget in bytes and where it came from (``"user"`` or ``"estimated"``)."""

    bytes: int
    source: str
    available: int | None = None

    def describe(self) -> str:
        gib = self.bytes / 1024**3
        if self.source == "user":
            return f"memory budget {gib:.2f} GiB (given)"
        return (f"memory budget {gib:.2f} GiB (estimated: {AVAILABLE_SHARE:g} x {self.available / 1024**3:.2f} GiB "
                "available; --memory-budget to change)")

    def record(self) -> dict:
        return {"memory_budget_bytes": self.bytes, "memory_budget_source": self.source,
                "available_bytes": self.available}


def memory_budget(value: str | float | int | MemoryBudget | None = None) -> MemoryBudget:
    """The budget the caller gave, or a share of the available memory (``None``)."""
    if isinstance(value, MemoryBudget):
        return value
    if value is not None:
        return MemoryBudget(parse_bytes(value), "user")
    avail = available_memory()
    return MemoryBudget(int(AVAILABLE_SHARE * avail), "estimated", avail)
