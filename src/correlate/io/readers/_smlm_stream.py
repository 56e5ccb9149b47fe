"""Localization tables read in batches through their own in-memory reader.

A text table (one header line, then one row a line) is cut at line ends into slices of about
``batch_bytes``; a Parquet file is read ``batch_rows`` rows at a time
(``ParquetFile.iter_batches``). Each slice becomes a small file beside the work folder (header +
rows) that the format's reader reads as it would the whole file, so the column mapping, the unit
conversion and the frame base are the reader's own and the rows equal those of an in-memory
read. Errors name the original file and the first row of the slice.

Formats that can be read this way are listed in :data:`STREAMABLE`: their files are one header
line followed by rows (text), or Parquet. Quoted fields holding line breaks are not supported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from ...errors import CorrelateError, FormatError

__all__ = ["STREAMABLE", "can_stream", "iter_batches", "estimate_rows"]

#: Reader names whose files can be sliced into header + rows.
STREAMABLE = frozenset({"thunderstorm", "table"})


def can_stream(spec, path: Path) -> bool:
    """True when ``spec`` (a ReaderSpec) reads ``path`` in a form :func:`iter_batches` can slice."""
    return spec.name in STREAMABLE and Path(path).is_file()


def estimate_rows(path: Path) -> tuple[int, int]:
    """(rows, columns) of a table: Parquet metadata, or the file size over the mean line length
    of its first 1 MiB (text)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        md = pq.ParquetFile(path).metadata
        return int(md.num_rows), int(md.num_columns)
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    lines = head.split(b"\n")
    body = lines[1:-1] if len(lines) > 2 else lines[1:]
    n_cols = max(1, len(lines[0].replace(b"\t", b",").replace(b";", b",").split(b",")))
    if not body:
        return 0, n_cols
    mean = (sum(len(b) for b in body) + len(body)) / len(body)
    size = path.stat().st_size - len(lines[0]) - 1
    return int(size / max(mean, 1.0)) + 1, n_cols


def _read_slice(spec, tmp: Path, src: Path, first_row: int, overrides: dict[str, Any]) -> pd.DataFrame:
    try:
        df = spec.read(tmp, **overrides)
    except MemoryError:
        raise
    except CorrelateError as exc:
        cls = type(exc)
        msg = str(exc)
        prefix = ": ".join(p for p in (exc.path, f"field '{exc.field}'" if exc.field is not None else None) if p)
        if prefix and msg.startswith(prefix + ": "):
            msg = msg[len(prefix) + 2:]
        try:
            raise cls(f"{msg} (in the rows from {first_row} on)", path=src, field=exc.field) from exc
        except TypeError:
            raise exc from None
    except Exception as exc:  # a damaged slice must not escape as a library's own error
        raise FormatError(f"cannot be read as {spec.name} (in the rows from {first_row} on): "
                          f"{type(exc).__name__}: {exc}", path=src) from exc
    df.attrs["source"] = str(src)
    df.attrs.setdefault("source_format", spec.name)
    return df


def _text_slices(path: Path, batch_bytes: int) -> Iterator[tuple[bytes, bytes]]:
    """(header line, block of whole lines) pairs covering the file."""
    with open(path, "rb") as fh:
        header = fh.readline()
        carry = b""
        while True:
            block = fh.read(batch_bytes)
            if not block:
                if carry:
                    yield header, carry
                return
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            carry = data[cut:]
            yield header, data[:cut]


def iter_batches(spec, path: Path, workdir: Path, *, batch_bytes: int, batch_rows: int,
                 **overrides: Any) -> Iterator[pd.DataFrame]:
    """Yield the localizations of ``path`` in input order, one reader result per slice.

    Parameters
    ----------
    spec
        The ReaderSpec that would read the whole file (``correlate.io.find_reader``).
    workdir
        A folder for the slice files (inside the transaction's staging folder).
    batch_bytes, batch_rows
        Slice size of text files (bytes) and Parquet files (rows).
    **overrides
        The reader's options (``pixel_size_nm=``, ``columns=``...).
    """
    path = Path(path)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = workdir / f"slice{path.suffix.lower()}"
    first = 0
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # pre_buffer keeps every column chunk read so far: RSS grows to the file's size
        pf = pq.ParquetFile(path, pre_buffer=False)
        schema = pf.schema_arrow
        for batch in pf.iter_batches(batch_size=max(1, int(batch_rows))):
            pq.write_table(pa.Table.from_batches([batch], schema=schema), tmp, compression="none", use_dictionary=False,
                           write_statistics=False)
            df = _read_slice(spec, tmp, path, first, overrides)
            first += batch.num_rows
            yield df
    else:
        any_rows = False
        for header, block in _text_slices(path, max(1 << 16, int(batch_bytes))):
            tmp.write_bytes(header + block)
            df = _read_slice(spec, tmp, path, first, overrides)
            first += len(df)
            if len(df) or not any_rows:
                any_rows = True
                yield df
        if not any_rows:
            with open(path, "rb") as fh:
                tmp.write_bytes(fh.readline())
            yield _read_slice(spec, tmp, path, 0, overrides)
    tmp.unlink(missing_ok=True)
