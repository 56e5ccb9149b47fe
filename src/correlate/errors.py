"""Exceptions raised by correlate.

Every message names the file (or element), the field and what was expected, so a user can fix the
input without reading the code.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "CorrelateError",
    "FormatError",
    "UnitError",
    "RegistrationError",
    "StoreError",
    "ElementError",
    "UnplacedError",
    "short_exception",
]

#: Longest message a CorrelateError keeps; longer ones keep their start and end.
MAX_MESSAGE = 2000


def short_exception(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an exception, cut to ``limit`` characters (for quoting in a message)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cap(text: str) -> str:
    if len(text) <= MAX_MESSAGE:
        return text
    return f"{text[: MAX_MESSAGE - 300]} [... {len(text) - MAX_MESSAGE + 100} characters cut ...] {text[-200:]}"


class CorrelateError(Exception):
    """Base class of every error correlate raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.field = field
        parts = []
        if self.path is not None:
            parts.append(f"{self.path}")
        if field is not None:
            parts.append(f"field '{field}'")
        prefix = ": ".join(parts)
        message = _cap(str(message))
        super().__init__(f"{prefix}: {message}" if prefix else message)


class FormatError(CorrelateError):
    """A file is not what it claims to be: truncated, malformed, missing a column or key."""


class UnitError(CorrelateError):
    """A unit string is unknown, or a quantity has the wrong kind of unit."""


class RegistrationError(CorrelateError):
    """Registration cannot give a trustworthy answer (too few fiducials, degenerate geometry...).

    ``stage`` names the step that could not decide (``"detection"``, ``"pairing"``, ``"fit"``),
    ``hint`` the option that would help (e.g. ``"--bead-diameter"``), and ``diagnostics`` holds
    what the step saw (counts, best candidates, best pose hypothesis) for reports and figures.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike | None = None,
        field: str | None = None,
        stage: str | None = None,
        hint: str | None = None,
        diagnostics: dict | None = None,
    ) -> None:
        self.stage = stage
        self.hint = hint
        self.diagnostics = dict(diagnostics or {})
        text = message
        if stage is not None:
            text = f"{stage}: {text}"
        if hint and hint not in message:
            text = f"{text} (try {hint})"
        super().__init__(text, path=path, field=field)


class UnplacedError(RegistrationError):
    """An element that no registration has placed is about to be joined to another element."""


class StoreError(CorrelateError):
    """A scene store is missing, not a correlate store, or a write to it failed."""


class ElementError(CorrelateError):
    """An element (image, localizations, landmarks, table) is malformed or does not exist."""
