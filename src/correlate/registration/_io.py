"""Landmark and transform files: BigWarp landmark CSV, plain pair CSV, affine matrix text.

BigWarp landmark CSV (Fiji BigWarp "Export landmarks"): one row per landmark, no header, every
field double-quoted: ``"Pt-0","true",mx,my[,mz],fx,fy[,fz]`` - name, enabled (``"true"`` /
``"false"``), the *moving* image point, then the *fixed* (target) point, in the images'
calibrated physical units. correlate writes nm; give ``unit_nm`` when the file is in other units.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..elements import Landmarks
from ..errors import CorrelateError, FormatError
from ..transforms import Affine, Transform

__all__ = [
    "read_affine_text",
    "read_bigwarp_csv",
    "read_landmarks_file",
    "read_pairs_csv",
    "write_affine_text",
    "write_bigwarp_csv",
]


def _fmt(v: float) -> str:
    return repr(float(v))


def write_bigwarp_csv(path, landmarks: Landmarks, *, unit_nm: float = 1.0) -> None:
    """Write landmarks (source = moving, target = fixed) as a BigWarp landmark CSV.

    Rows are named ``Pt-<i>`` in order; ``enabled`` is ``landmarks.used``. Coordinates are
    divided by ``unit_nm`` (1: nm). Written atomically (temporary file, then rename).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for i in range(len(landmarks)):
            row = [f"Pt-{i}", "true" if landmarks.used[i] else "false"]
            row += [_fmt(v / unit_nm) for v in landmarks.source[i]]
            row += [_fmt(v / unit_nm) for v in landmarks.target[i]]
            w.writerow(row)
    os.replace(tmp, path)


def read_bigwarp_csv(path, *, unit_nm: float = 1.0, source_system: str = "moving", target_system: str = "fixed") -> Landmarks:
    """Read a BigWarp landmark CSV into :class:`~correlate.elements.Landmarks`.

    ``source`` = moving points, ``target`` = fixed points, multiplied by ``unit_nm`` into nm;
    ``used`` from the enabled column; ``ids`` from the names. No covariances (zero).

    Raises
    ------
    FormatError
        Wrong number of columns, a non-numeric coordinate or an enabled flag other than
        true/false (naming the row).
    """
    path = Path(path)
    names, used, rows = [], [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for k, row in enumerate(csv.reader(fh)):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) not in (6, 8):
                raise FormatError(
                    f"row {k + 1} has {len(row)} fields; a BigWarp landmark row has 6 (2-D) or 8 (3-D): "
                    "name, enabled, moving x y [z], fixed x y [z]",
                    path=path,
                )
            flag = row[1].strip().lower()
            if flag not in ("true", "false"):
                raise FormatError(f"row {k + 1}: enabled must be 'true' or 'false', got {row[1]!r}", path=path, field="enabled")
            try:
                vals = [float(v) for v in row[2:]]
            except ValueError as exc:
                raise FormatError(f"row {k + 1}: non-numeric coordinate ({exc})", path=path) from exc
            names.append(row[0])
            used.append(flag == "true")
            rows.append(vals)
    if not rows:
        raise FormatError("no landmark rows found", path=path)
    if len({len(r) for r in rows}) != 1:
        raise FormatError("rows mix 2-D and 3-D landmarks", path=path)
    a = np.asarray(rows, float) * unit_nm
    d = a.shape[1] // 2
    return Landmarks(
        a[:, :d], a[:, d:], ids=np.asarray(names, dtype=object), used=np.asarray(used),
        source_system=source_system, target_system=target_system, attrs={"source_file": str(path)},
    )


def read_pairs_csv(path, *, unit_nm: float = 1.0, source_system: str = "moving", target_system: str = "fixed") -> Landmarks:
    """Read manual pairs from a CSV with a header ``source_x, source_y[, source_z], target_x, ...``.

    Optional columns: ``id``, ``used``, and covariances ``source_cov_xx`` ... (as written by
    :meth:`Landmarks.to_dataframe`) or isotropic ``source_sigma`` / ``target_sigma`` (nm).
    """
    path = Path(path)
    df = pd.read_csv(path)
    need = {"source_x", "source_y", "target_x", "target_y"}
    missing = need - set(df.columns)
    if missing:
        raise FormatError(
            f"pairs CSV lacks columns {sorted(missing)}; expected source_x, source_y[, source_z], "
            "target_x, target_y[, target_z] (nm)",
            path=path,
        )
    for c in [c for c in df.columns if c.startswith(("source_", "target_")) and c[-2:] in ("_x", "_y", "_z")]:
        df[c] = df[c].astype(float) * unit_nm
    lm = Landmarks.from_dataframe(df)
    d = lm.ndim
    for side in ("source", "target"):
        col = f"{side}_sigma"
        if col in df.columns:
            s = df[col].to_numpy(float) * unit_nm
            setattr(lm, f"{side}_cov", (s**2)[:, None, None] * np.eye(d)[None])
    lm.source_system, lm.target_system = source_system, target_system
    lm.attrs["source_file"] = str(path)
    return lm


def read_landmarks_file(path, **kw) -> Landmarks:
    """Read manual pairs: a BigWarp CSV (no header, quoted) or a pairs CSV with a header."""
    with open(path, encoding="utf-8-sig") as fh:
        first = fh.readline()
    if "source_x" in first:
        return read_pairs_csv(path, **kw)
    return read_bigwarp_csv(path, **kw)


def write_affine_text(path, transform: Transform) -> None:
    """Write a linear transform as its (D+1) x (D+1) homogeneous matrix (x, y[, z] order, nm),
    one row per line, whitespace separated, with a comment header."""
    m = transform.matrix
    d = m.shape[0] - 1
    header = (
        f"correlate affine, {d}-D, maps moving -> fixed, x y{' z' if d == 3 else ''} order, nm; "
        "homogeneous matrix"
    )
    np.savetxt(path, m, fmt="%.17g", header=header)


def read_affine_text(path) -> Affine:
    """Read a matrix written by :func:`write_affine_text` (or any (D, D+1)/(D+1, D+1) text)."""
    try:
        m = np.loadtxt(path, ndmin=2)
    except ValueError as exc:
        raise FormatError(f"not a numeric matrix: {exc}", path=path) from exc
    try:
        return Affine(m)
    except CorrelateError as exc:
        raise FormatError(str(exc), path=path) from exc
