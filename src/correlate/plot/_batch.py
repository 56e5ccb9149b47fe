"""Figures of a batch: per-sample distributions of the combined per-particle table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ElementError
from ._particles import _figure, count_columns, size_column

__all__ = ["plot_batch_summary"]


def plot_batch_summary(table: pd.DataFrame, *, size: str | None = None, count: str = "auto"):
    """Box plots per sample of particle size (nm) and of each label's count per particle.

    Parameters
    ----------
    table
        A combined per-particle table with a ``sample`` column (:func:`correlate.batch.run_batch`).
    size
        Size column (default: the equivalent diameter).
    count
        ``"molecules"``, ``"localizations"`` or ``"auto"`` (see :func:`count_columns`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    col = size_column(table, size)
    try:
        counts = count_columns(table, count)
    except ElementError:  # a table without label counts: sizes only
        counts = {}
    samples = list(dict.fromkeys(table["sample"]))
    n = 1 + len(counts)
    fig = _figure(max(4.0, 0.5 * len(samples) + 2.5) * n, 4.0)
    axes = fig.subplots(1, n, squeeze=False)[0]
    panels = [(col, "size (nm)")] + [(c, f"{k}: {c.split('_')[1]} per particle") for k, c in counts.items()]
    for ax, (c, title) in zip(axes, panels):
        data = [table.loc[table["sample"] == s, c].dropna().to_numpy(float) for s in samples]
        ax.boxplot([d if len(d) else np.array([np.nan]) for d in data], showfliers=False)
        ax.set_xticks(range(1, len(samples) + 1), samples, rotation=45, ha="right")
        ax.set_title(title)
        ax.set_ylabel(c)
    fig.suptitle(f"{len(table)} particles in {len(samples)} samples")
    return fig
