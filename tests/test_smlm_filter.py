"""Filtering localizations: safe expressions, ROI, frame ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from correlate.errors import CorrelateError
from correlate.smlm import check_expression, filter_localizations


@pytest.fixture
def locs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1000
    df = pd.DataFrame({
        "x": rng.uniform(0, 1000, n),
        "y": rng.uniform(0, 1000, n),
        "frame": rng.integers(0, 100, n),
        "photons": rng.uniform(100, 2000, n),
        "precision": rng.uniform(2, 40, n),
        "channel": rng.choice(["a", "b"], n),
    })
    df.attrs = {"kind": "localizations", "source_format": "test"}
    return df


def test_where_matches_numpy(locs):
    out = filter_localizations(locs, "precision < 20 and photons > 500")
    expect = (locs.precision < 20) & (locs.photons > 500)
    assert len(out) == int(expect.sum()) > 0
    assert np.allclose(np.sort(out.x), np.sort(locs.x[expect]))
    assert out.attrs["source_format"] == "test"


def test_where_or_not_chained_arithmetic_in(locs):
    out = filter_localizations(locs, "not (precision >= 20) or 100 < photons * 0.1 <= 150")
    expect = ~(locs.precision >= 20) | ((locs.photons * 0.1 > 100) & (locs.photons * 0.1 <= 150))
    assert len(out) == int(expect.sum())
    out = filter_localizations(locs, "channel in ['a'] and frame != 3")
    assert len(out) == int(((locs.channel == "a") & (locs.frame != 3)).sum())


@pytest.mark.parametrize(
    "expr, why",
    [
        ("__import__('os').system('echo hi') == 0", "function calls"),
        ("x.__class__ == 1", "attribute access"),
        ("x[0] > 1", "indexing"),
        ("@y > 1", "'@'"),
        ("lambda: 1", "Lambda"),
        ("precision < 20 & photons > 3", "'&'"),
        ("nonexistent > 3", "unknown column 'nonexistent'"),
        ("precision <", "cannot parse"),
        ("", "empty"),
        ("[c for c in x]", "ListComp"),
    ],
)
def test_unsafe_or_wrong_expressions_are_rejected(locs, expr, why):
    with pytest.raises(CorrelateError, match="where") as exc:
        check_expression(expr, locs.columns)
    assert why in str(exc.value)
    if expr:
        with pytest.raises(CorrelateError, match="where"):
            filter_localizations(locs, expr)


def test_value_not_condition_rejected(locs):
    with pytest.raises(CorrelateError, match="condition"):
        filter_localizations(locs, "precision * 2")


def test_check_expression_returns_columns(locs):
    assert check_expression("precision < 20 and photons > 500 or x > 3", locs.columns) == ["photons", "precision", "x"]


def test_roi_and_frames(locs):
    out = filter_localizations(locs, roi="100,200,600,700", frames="10:50")
    m = (locs.x >= 100) & (locs.x < 600) & (locs.y >= 200) & (locs.y < 700) & (locs.frame >= 10) & (locs.frame < 50)
    assert len(out) == int(m.sum()) > 0
    assert len(filter_localizations(locs, frames=":10")) == int((locs.frame < 10).sum())
    assert len(filter_localizations(locs, frames="90:")) == int((locs.frame >= 90).sum())
    with pytest.raises(CorrelateError, match="roi"):
        filter_localizations(locs, roi="5,5,1,1")
    with pytest.raises(CorrelateError, match="roi"):
        filter_localizations(locs, roi="1,2,3")
    with pytest.raises(CorrelateError, match="frames"):
        filter_localizations(locs, frames="50:10")
