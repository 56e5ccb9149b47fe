"""The reader registry: which reader opens which file.

Each reader is a :class:`ReaderSpec`: a name, the suffixes it claims, a cheap ``can_open`` look at
the first bytes, and a ``read`` function returning an element (Image or Localizations) in nm.
Built-in readers live in :mod:`correlate.io.readers` (one module per format family, each with a
module-level ``READERS`` list); other packages add theirs through the ``correlate.readers``
entry-point group (an entry point resolves to a :class:`ReaderSpec` or a list of them). Reader
modules are imported only when a file is read, so ``import correlate`` stays light.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Callable

from ..errors import CorrelateError, FormatError, short_exception

__all__ = ["ReaderSpec", "available_readers", "find_reader", "read", "HEAD_BYTES"]

#: How many leading bytes ``can_open`` gets to look at.
HEAD_BYTES = 4096


@dataclass(frozen=True)
class ReaderSpec:
    """One file format a reader understands.

    Attributes
    ----------
    name
        Short format name (``"thunderstorm"``, ``"mrc"``...), used by ``read(..., format=)``.
    suffixes
        Lower-case file suffixes including the dot (``".csv"``, ``".ome.tif"``).
    modality
        Default modality of what it returns (``"smlm"``, ``"em"``, ``"afm"``, ``"lm"``...).
    read
        ``read(path, **overrides) -> element``.
    can_open
        ``can_open(path, head) -> bool`` from the path and the first :data:`HEAD_BYTES` bytes;
        defaults to the suffix test alone.
    priority
        Higher is asked first among readers claiming the same suffix (specific before generic).
    description
        One line for the format table and error messages.
    """

    name: str
    suffixes: tuple[str, ...]
    modality: str
    read: Callable[..., Any]
    can_open: Callable[[Path, bytes], bool] | None = None
    priority: int = 0
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def claims(self, path: Path) -> bool:
        name = path.name.lower()
        return any(name.endswith(s) for s in self.suffixes)


def _builtin_specs() -> list[ReaderSpec]:
    from . import readers

    specs: list[ReaderSpec] = []
    for mod in sorted(pkgutil.iter_modules(readers.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{readers.__name__}.{mod.name}")
        specs.extend(getattr(module, "READERS", []))
    return specs


def _plugin_specs() -> list[ReaderSpec]:
    from importlib.metadata import entry_points

    import warnings

    specs: list[ReaderSpec] = []
    for ep in entry_points(group="correlate.readers"):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken third-party plugin must not stop the built-in readers
            warnings.warn(f"reader plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}",
                          stacklevel=2)
            continue
        specs.extend(obj if isinstance(obj, (list, tuple)) else [obj])
    return specs


def available_readers() -> list[ReaderSpec]:
    """Every reader known: built-in ones and those from the ``correlate.readers`` entry points."""
    specs = _builtin_specs() + _plugin_specs()
    return sorted(specs, key=lambda s: -s.priority)


def find_reader(path: str | PathLike, format: str | None = None) -> ReaderSpec:
    """The reader that opens ``path`` (or the one named ``format``).

    Raises
    ------
    FormatError
        If no reader recognises the file; the message lists the formats tried.
    """
    p = Path(path)
    specs = available_readers()
    if format is not None:
        for s in specs:
            if s.name == format:
                return s
        raise FormatError(
            f"unknown format {format!r}; known formats: {', '.join(sorted({s.name for s in specs}))}",
            path=p,
        )
    if not p.exists():
        raise FormatError("file does not exist", path=p)
    if p.is_dir():
        head = b""
    else:
        with open(p, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        if not head:
            raise FormatError("file is empty (0 bytes)", path=p)
    claimed = [s for s in specs if s.claims(p)]
    for s in claimed:
        if s.can_open is None or _sniff(s, p, head):
            return s
    if claimed:
        raise FormatError(
            "the suffix suggests "
            + ", ".join(s.name for s in claimed)
            + " but the content matches none of them (wrong extension, or a damaged file)",
            path=p,
        )
    for s in specs:  # content sniffing for files with an unexpected suffix
        if s.can_open is not None and _sniff(s, p, head):
            return s
    raise FormatError("no reader recognises this file; known suffixes: " + _suffix_summary(specs), path=p)


def _sniff(spec: ReaderSpec, path: Path, head: bytes) -> bool:
    """``spec.can_open``; a sniff that fails on a damaged file means "not this format"."""
    try:
        return bool(spec.can_open(path, head))
    except Exception:  # noqa: BLE001 - a look at the first bytes never raises
        return False


def _suffix_summary(specs: list[ReaderSpec]) -> str:
    """The suffixes readers claim, for a message: numbered ones (``.000``...``.999`` of Nanoscope)
    collapse into one range instead of a thousand entries."""
    suffixes = {x for s in specs for x in s.suffixes}
    numbered = sorted(x for x in suffixes if x[1:].isdigit())
    named = sorted(suffixes.difference(numbered))
    if len(numbered) > 3:
        named.append(f"{numbered[0]} to {numbered[-1]}")
    else:
        named.extend(numbered)
    return ", ".join(named)


def read(path: str | PathLike, modality: str | None = None, *, format: str | None = None, **overrides: Any):
    """Read a microscopy file into an element with every length in nm.

    Parameters
    ----------
    path
        The file (or folder, for formats stored as folders).
    modality
        Override the modality the reader assumes (``"sim"``, ``"sted"``, ``"em"``...).
    format
        Force a reader by name instead of detecting it.
    **overrides
        Reader-specific options, e.g. ``pixel_size_nm=`` for files without a calibration,
        ``columns=`` for the generic table reader.

    Returns
    -------
    xarray.DataArray or pandas.DataFrame
        An Image or Localizations element; its ``attrs["source_format"]`` names the reader.
    """
    spec = find_reader(path, format)
    if modality is not None:
        overrides["modality"] = modality
    try:
        element = spec.read(Path(path), **overrides)
    except CorrelateError as exc:
        if exc.path is None:  # every message names the file
            raise type(exc)(str(exc), path=path) from exc
        raise
    except MemoryError:
        raise FormatError(
            f"reading as {spec.name} needs more memory than is available; the file's declared sizes may be damaged",
            path=path,
        ) from None
    except Exception as exc:  # a damaged file must not escape as a library's own error
        raise FormatError(
            f"cannot be read as {spec.name}: the file looks damaged or is a variant this reader does not know "
            f"({short_exception(exc)})",
            path=path,
        ) from exc
    element.attrs.setdefault("source_format", spec.name)
    return element
