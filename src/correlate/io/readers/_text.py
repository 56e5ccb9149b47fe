"""Text-table helpers for the localization readers: header lines and fast numeric tables."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ...errors import FormatError

__all__ = ["parse_header_fields", "read_first_line", "last_line", "read_numeric_csv", "require_terminated"]


def parse_header_fields(line: str, sep: str = ",") -> list[str]:
    """Column labels of a delimited header line.

    Copes with the ThunderSTORM variant where the whole header is one quoted field with doubled
    inner quotes (``"id,""frame"",""x [nm]""..."``): a plain CSV parser sees a single column there,
    so a single field that itself contains the separator is parsed again.
    """
    line = line.rstrip("\r\n")
    fields = next(csv.reader([line], delimiter=sep), [])
    if len(fields) == 1 and sep in fields[0]:
        fields = next(csv.reader([fields[0]], delimiter=sep), [])
    return [f.strip().strip('"').strip() for f in fields]


def read_first_line(path: Path, limit: int = 1 << 20, encoding: str = "utf-8") -> str:
    """The first line of a text file (at most ``limit`` bytes), BOM removed."""
    with open(path, "rb") as fh:
        raw = fh.readline(limit)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    raw = raw.split(b"\r", 1)[0]  # a file with CR-only line ends
    try:
        return raw.decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError:
        return raw.decode("latin-1").rstrip("\r\n")


def last_line(path: Path, block: int = 1 << 16) -> tuple[str, bool]:
    """The last non-empty line of a text file and whether the file ends with a line break."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(max(0, size - block))
        tail = fh.read()
    ends_with_newline = tail.endswith((b"\n", b"\r"))
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    return (lines[-1].decode("latin-1") if lines else ""), ends_with_newline


def require_terminated(source: Path | bytes, path: Path) -> None:
    """Refuse a table whose last line has no line break: a file cut while being copied or written
    otherwise reads with its last value changed (a cut inside the field) and no word said.

    Raises
    ------
    FormatError
        Naming the file and quoting the start of the unterminated last line.
    """
    if isinstance(source, (bytes, bytearray)):
        tail = bytes(source[-256:])
    else:
        size = os.path.getsize(source)
        with open(source, "rb") as fh:
            fh.seek(max(0, size - 256))
            tail = fh.read()
    if not tail.strip() or tail.endswith((b"\n", b"\r")):
        return
    last = tail.splitlines()[-1].decode("latin-1")[:80]
    raise FormatError(
        f"the last line ({last!r}) has no line break: the file looks truncated. If it is complete, end it "
        "with a line break",
        path=path, field="last row",
    )


def read_numeric_csv(
    source: Path | bytes,
    names: Sequence[str],
    *,
    skip_rows: int,
    sep: str = ",",
    path: Path,
    types: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read a delimited numeric table fast (pyarrow's multi-threaded CSV parser), as float64.

    Parameters
    ----------
    source
        File path, or the table's bytes.
    names
        Column names to give (the header is skipped with ``skip_rows``).
    types
        Per-column pyarrow type name overriding float64 (``"string"`` for text columns).

    Raises
    ------
    FormatError
        A row with the wrong number of fields (e.g. a truncated last line) or a value that is
        not a number, naming the file.
    """
    import pyarrow as pa
    from pyarrow import csv as pacsv

    names = list(names)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise FormatError(f"duplicate column name(s) {dup}", path=path)
    column_types = {n: pa.float64() for n in names}
    for k, v in (types or {}).items():
        column_types[k] = getattr(pa, v)()
    read_opts = pacsv.ReadOptions(
        skip_rows=skip_rows, column_names=names, block_size=1 << 22, use_threads=True
    )
    parse_opts = pacsv.ParseOptions(delimiter=sep)
    convert_opts = pacsv.ConvertOptions(
        column_types=column_types,
        null_values=["", "NA", "NaN", "nan", "null"],
        strings_can_be_null=True,
    )
    require_terminated(source, path)
    src = pa.BufferReader(source) if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        table = pacsv.read_csv(src, read_options=read_opts, parse_options=parse_opts, convert_options=convert_opts)
    except pa.ArrowInvalid as exc:
        msg = str(exc).splitlines()[0]
        if "Expected" in msg and "columns" in msg:
            raise FormatError(
                f"a row has the wrong number of fields ({msg}); the file may be truncated or damaged",
                path=path,
            ) from None
        raise FormatError(f"cannot parse the table: {msg}", path=path) from None
    return _table_to_frame(table)


def _table_to_frame(table) -> pd.DataFrame:
    """The parsed table as a DataFrame of one numpy array per column, with no second pass over
    the data: each float64 column's chunks are copied once into its array (nulls read as NaN);
    other columns go through pyarrow's own conversion."""
    import pyarrow as pa

    n = table.num_rows
    cols: dict[str, object] = {}
    for name in table.column_names:
        col = table.column(name)
        if col.type == pa.float64():
            out = np.empty(n, np.float64)
            a = 0
            for chunk in col.chunks:
                m = len(chunk)
                out[a : a + m] = chunk.to_numpy(zero_copy_only=False)
                a += m
            cols[name] = out
        else:
            cols[name] = col.to_pandas()
        # free each column's buffers as soon as it is converted
        table = table.drop_columns([name])
    return pd.DataFrame(cols, copy=False)


def read_whitespace_table(data: bytes | str, names: Sequence[str], *, path: Path) -> pd.DataFrame:
    """A whitespace-separated numeric table (no header) as float64 columns."""
    if isinstance(data, bytes):
        data = data.decode("latin-1")
    try:
        df = pd.read_csv(
            io.StringIO(data), sep=r"\s+", header=None, names=list(names), dtype=np.float64, engine="c"
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise FormatError(f"cannot parse the table: {str(exc).splitlines()[0]}", path=path) from None
    return df
