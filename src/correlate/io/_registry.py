"""The reader registry: which reader opens which file.

Each reader is a :class:`ReaderSpec`: a name, the suffixes it claims, a cheap ``can_open`` look at
the first bytes, and a ``read`` function returning an element (Image or Localizations) in nm.
Built-in readers live in :mod:`correlate.io.readers` (one module per format family, each with a
module-level ``READERS`` list); other packages add theirs through the ``correlate.readers``
entry-point group (an entry point resolves to a :class:`ReaderSpec` or a list of them). Reader
modules are imported only when a file is read, and then only those whose readers claim the file's
suffix (:mod:`correlate.io._reader_index`), once per process, so ``import correlate`` stays light
and a read pays for its own reader alone.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Iterable

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


@functools.lru_cache(maxsize=None)
def _builtin_modules() -> tuple[str, ...]:
    """Names of the reader modules in :mod:`correlate.io.readers` (a directory listing, no import)."""
    from . import readers

    return tuple(sorted(m.name for m in pkgutil.iter_modules(readers.__path__) if not m.name.startswith("_")))


@functools.lru_cache(maxsize=None)
def _module_specs(name: str) -> tuple[ReaderSpec, ...]:
    """The ``READERS`` of one built-in reader module (imported on first use)."""
    module = importlib.import_module(f"{__package__}.readers.{name}")
    return tuple(getattr(module, "READERS", ()))


def _builtin_specs(modules: Iterable[str] | None = None) -> list[ReaderSpec]:
    """Specs of the given built-in modules (all when None) and of every module the index does not
    list, in module-name order."""
    from ._reader_index import MODULES

    present = _builtin_modules()
    wanted = set(present) if modules is None else set(modules) | {m for m in present if m not in MODULES}
    return [spec for m in present if m in wanted for spec in _module_specs(m)]


@functools.lru_cache(maxsize=None)
def _plugin_specs_cached(entry_points: tuple[tuple[str, str], ...]) -> tuple[ReaderSpec, ...]:
    import warnings

    from ._plugin_cache import load

    specs: list[ReaderSpec] = []
    for name, value in entry_points:
        try:
            obj = load(value)
        except Exception as exc:  # a broken third-party plugin must not stop the built-in readers
            warnings.warn(f"reader plugin {name!r} ({value}) failed to load: {type(exc).__name__}: {exc}",
                          stacklevel=4)
            continue
        specs.extend(obj if isinstance(obj, (list, tuple)) else [obj])
    return tuple(specs)


def _plugin_specs() -> list[ReaderSpec]:
    """Readers from the ``correlate.readers`` entry points (the list cached across processes,
    each plugin loaded once per process)."""
    from ._plugin_cache import _entry_points_replaced, plugin_entry_points

    eps = tuple(plugin_entry_points())
    if _entry_points_replaced():
        _plugin_specs_cached.cache_clear()
    return list(_plugin_specs_cached(eps))


def _ordered(specs: list[ReaderSpec]) -> list[ReaderSpec]:
    return sorted(specs, key=lambda s: -s.priority)


def available_readers() -> list[ReaderSpec]:
    """Every reader known: built-in ones and those from the ``correlate.readers`` entry points."""
    return _ordered(_builtin_specs() + _plugin_specs())


def find_reader(path: str | PathLike, format: str | None = None) -> ReaderSpec:
    """The reader that opens ``path`` (or the one named ``format``).

    Only the reader modules that claim the file's suffix (or hold ``format``) are imported; all of
    them only when the content has to be sniffed or a name is unknown.

    Raises
    ------
    FormatError
        If no reader recognises the file; the message lists the formats tried.
    """
    from ._reader_index import modules_claiming, modules_named

    p = Path(path)
    if format is not None:
        for s in _ordered(_builtin_specs(modules_named(format)) + _plugin_specs()):
            if s.name == format:
                return s
        specs = available_readers()
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
    specs = _ordered(_builtin_specs(modules_claiming(p.name)) + _plugin_specs())
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
    specs = available_readers()
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
