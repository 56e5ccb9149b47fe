"""The Figure every plot function returns: a matplotlib Figure that shows itself in Jupyter.

Figures are built without pyplot (no global state), so a notebook's inline backend does not know
them; :class:`NotebookFigure` gives them ``_repr_png_``, and a figure returned as a cell's value
displays whatever backend is selected (Agg included), at most :data:`NOTEBOOK_MAX_PX` pixels
wide. The class is built on first use so that
importing :mod:`correlate.plot` does not import matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["new_figure", "figure_to_png_bytes"]

_CLASS: Any = None
#: Longest side (px) of a figure shown in a notebook; save_figure writes the full resolution.
NOTEBOOK_MAX_PX = 1000


def _figure_class():
    global _CLASS
    if _CLASS is None:
        from matplotlib.figure import Figure

        class NotebookFigure(Figure):
            """A :class:`matplotlib.figure.Figure` that displays as PNG in Jupyter."""

            def _repr_png_(self) -> bytes:
                w, h = self.get_size_inches() * self.dpi
                return figure_to_png_bytes(self, dpi=self.dpi * min(1.0, NOTEBOOK_MAX_PX / max(w, h, 1.0)))

        NotebookFigure.__module__ = __name__
        NotebookFigure.__qualname__ = "NotebookFigure"
        _CLASS = NotebookFigure
    return _CLASS


def figure_to_png_bytes(fig, dpi: float | None = None) -> bytes:
    """PNG bytes of a matplotlib Figure (rendered with the Agg backend)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or type(fig.canvas).__name__ == "FigureCanvasBase":
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()


def __getattr__(name: str):
    if name == "NotebookFigure":
        return _figure_class()
    raise AttributeError(name)


def new_figure(**kwargs: Any):
    """A new :class:`NotebookFigure` (``figsize``, ``dpi``, ``layout``... as for Figure)."""
    return _figure_class()(**kwargs)
