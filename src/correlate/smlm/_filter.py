"""Filtering localizations: a safe boolean expression over columns, an ROI and a frame range."""

from __future__ import annotations

import ast
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import CorrelateError

__all__ = ["check_expression", "filter_localizations", "keep_mask", "parse_frames", "parse_roi"]

_ALLOWED_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Eq,
    ast.NotEq,
    ast.In,
    ast.NotIn,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Mod,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    ast.Tuple,
)


#: Longest filter expression accepted (characters).
MAX_EXPRESSION = 2000


def check_expression(expr: str, columns: Sequence[str]) -> list[str]:
    """Check that ``expr`` is a plain condition over ``columns``; return the column names used.

    Allowed: column names, numbers, strings, booleans, comparisons (``< <= > >= == !=``, ``in``,
    ``not in`` against a list of constants), arithmetic (``+ - * / %``), ``and``/``or``/``not``
    (also ``&``/``|``/``~`` are *not* accepted: write words). Function calls, attribute access,
    subscripts, ``@variables``, lambdas and anything else are rejected.

    Raises
    ------
    CorrelateError
        Naming the offending part of the expression and the allowed columns.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise CorrelateError("empty filter expression; expected e.g. 'precision < 20 and photons > 500'", field="where")
    if "@" in expr or "`" in expr:
        raise CorrelateError(
            f"'@' variables and backquoted names are not allowed in {expr!r}", field="where"
        )
    if len(expr) > MAX_EXPRESSION:
        raise CorrelateError(f"filter expression of {len(expr)} characters; at most {MAX_EXPRESSION} accepted", field="where")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise CorrelateError(f"cannot parse {expr!r}: {exc.msg}", field="where") from exc
    except (RecursionError, MemoryError):
        raise CorrelateError("filter expression nested too deeply", field="where") from None
    used: list[str] = []
    cols = set(map(str, columns))
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            what = type(node).__name__
            hint = {
                "Call": "function calls",
                "Attribute": "attribute access",
                "Subscript": "indexing",
                "BitAnd": "'&' (write 'and')",
                "BitOr": "'|' (write 'or')",
                "Invert": "'~' (write 'not')",
            }.get(what, what)
            raise CorrelateError(
                f"{hint} not allowed in filter {expr!r}; use column names, numbers, comparisons "
                "and and/or/not",
                field="where",
            )
        if isinstance(node, ast.Name):
            if node.id in ("True", "False"):
                continue
            if node.id not in cols:
                raise CorrelateError(
                    f"unknown column {node.id!r} in filter {expr!r}; columns are {sorted(cols)}",
                    field="where",
                )
            used.append(node.id)
        if isinstance(node, ast.BinOp) and any(
            isinstance(side, (ast.List, ast.Tuple)) or (isinstance(side, ast.Constant) and isinstance(side.value, str))
            for side in (node.left, node.right)
        ):
            raise CorrelateError(
                f"arithmetic on text or lists is not allowed in filter {expr!r} (no string formatting or repetition); "
                "compare text with == or in",
                field="where",
            )
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool)):
            raise CorrelateError(f"constant {node.value!r} not allowed in filter {expr!r}", field="where")
        if isinstance(node, (ast.List, ast.Tuple)) and not all(
            isinstance(e, ast.Constant) or (isinstance(e, ast.UnaryOp) and isinstance(e.operand, ast.Constant))
            for e in node.elts
        ):
            raise CorrelateError(f"lists in filter {expr!r} may hold constants only", field="where")
    return sorted(set(used))


def parse_roi(roi: str | Sequence[float] | None) -> tuple[float, float, float, float] | None:
    """``"x0,y0,x1,y1"`` (nm) or a 4-sequence -> (x0, y0, x1, y1) with x0 < x1, y0 < y1."""
    if roi is None:
        return None
    if isinstance(roi, str):
        parts = [p for p in roi.replace(" ", "").split(",") if p]
        try:
            vals = [float(p) for p in parts]
        except ValueError as exc:
            raise CorrelateError(f"ROI {roi!r} must be four numbers x0,y0,x1,y1 in nm", field="roi") from exc
    else:
        vals = [float(v) for v in roi]
    if len(vals) != 4 or not np.all(np.isfinite(vals)):
        raise CorrelateError(f"ROI {roi!r} must be four finite numbers x0,y0,x1,y1 in nm", field="roi")
    x0, y0, x1, y1 = vals
    if not (x1 > x0 and y1 > y0):
        raise CorrelateError(f"ROI {roi!r} must have x0 < x1 and y0 < y1 (nm)", field="roi")
    return x0, y0, x1, y1


def parse_frames(frames: str | Sequence[int | None] | None) -> tuple[int | None, int | None] | None:
    """``"a:b"`` (0-based, ``b`` exclusive, either may be empty) or ``(a, b)`` -> (a, b)."""
    if frames is None:
        return None
    if isinstance(frames, str):
        if ":" not in frames:
            raise CorrelateError(f"frame range {frames!r} must look like a:b (0-based, b exclusive)", field="frames")
        a, b = frames.split(":", 1)
        try:
            lo = int(a) if a.strip() else None
            hi = int(b) if b.strip() else None
        except ValueError as exc:
            raise CorrelateError(f"frame range {frames!r} must be integers a:b", field="frames") from exc
    else:
        lo, hi = frames
        lo = None if lo is None else int(lo)
        hi = None if hi is None else int(hi)
    if lo is not None and hi is not None and hi <= lo:
        raise CorrelateError(f"frame range {frames!r} is empty (b must be > a)", field="frames")
    return lo, hi


def filter_localizations(
    df: pd.DataFrame,
    where: str | None = None,
    *,
    roi: str | Sequence[float] | None = None,
    frames: str | Sequence[int | None] | None = None,
) -> pd.DataFrame:
    """Keep the localizations that satisfy a condition, lie in an ROI and in a frame range.

    Parameters
    ----------
    df
        Localizations (x, y in nm, frame 0-based).
    where
        Condition over column names, e.g. ``"precision < 20 and photons > 500"``; checked by
        :func:`check_expression` (no function calls, attributes or variables) and evaluated with
        :meth:`pandas.DataFrame.query`.
    roi
        ``(x0, y0, x1, y1)`` in nm (or ``"x0,y0,x1,y1"``): keeps ``x0 <= x < x1`` and ``y0 <= y < y1``.
    frames
        ``(a, b)`` or ``"a:b"``: keeps ``a <= frame < b`` (0-based; either end open if None/empty).

    Returns
    -------
    pandas.DataFrame
        The kept rows (index reset), attrs preserved.
    """
    keep = keep_mask(df, where, roi=roi, frames=frames)
    out = df.loc[keep].reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def keep_mask(
    df: pd.DataFrame,
    where: str | None = None,
    *,
    roi: str | Sequence[float] | None = None,
    frames: str | Sequence[int | None] | None = None,
) -> np.ndarray:
    """The (N,) boolean mask of the rows :func:`filter_localizations` keeps."""
    keep = np.ones(len(df), bool)
    if where is not None and str(where).strip():
        check_expression(where, df.columns)
        try:
            mask = df.eval(where, engine="python")
        except Exception as exc:
            raise CorrelateError(f"cannot evaluate filter {where!r}: {exc}", field="where") from exc
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(df),):
            raise CorrelateError(
                f"filter {where!r} must be a condition (true/false per localization), not a value",
                field="where",
            )
        keep &= mask
    r = parse_roi(roi)
    if r is not None:
        x = df["x"].to_numpy(float)
        y = df["y"].to_numpy(float)
        keep &= (x >= r[0]) & (x < r[2]) & (y >= r[1]) & (y < r[3])
    f = parse_frames(frames)
    if f is not None:
        if "frame" not in df.columns:
            raise CorrelateError("a frame range needs a 'frame' column", field="frame")
        fr = df["frame"].to_numpy()
        if f[0] is not None:
            keep &= fr >= f[0]
        if f[1] is not None:
            keep &= fr < f[1]
    return keep
