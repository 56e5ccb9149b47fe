"""``--json`` on the subcommands: the flag, one JSON document on stdout, errors as JSON.

A command decorated with :func:`json_command` runs, under ``--json``, with ``sys.stdout`` pointed
at stderr (progress and library messages never mix into the document) and writes its result
once with :func:`emit`. An error still leaves the message on stderr and exit status 1; stdout
then holds ``{"error": ..., "type": ..., "path": ..., "field": ...}``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from typing import Any, Callable, TextIO

__all__ = ["JSON_HELP", "add_json_flag", "emit", "error_document", "json_command"]

JSON_HELP = (
    "print one JSON document on stdout instead of the text (lengths in nm; an unknown value is null or, "
    "for a number, the string \"NaN\"; infinities \"Infinity\"/\"-Infinity\", the zarr v3 encoding); "
    "progress goes to stderr. On an error the exit status is 1, the message goes to stderr as without "
    "--json, and stdout holds {\"error\": message, \"type\", \"path\", \"field\"} (a failed registration "
    "adds \"stage\", \"hint\" and \"diagnostics\"); a wrong command line exits 2 with the usage on stderr only"
)

_targets: list[TextIO] = []


def add_json_flag(parser) -> None:
    """Add ``--json`` (see :data:`JSON_HELP`) to a subcommand's parser."""
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


def dumps(obj: Any) -> str:
    """``obj`` as JSON text with the project's encoding of numpy values and non-finite floats."""
    from ..io._atomic import to_jsonable

    return json.dumps(to_jsonable(obj), indent=1, allow_nan=False)


def emit(obj: Any) -> None:
    """Write ``obj`` as the command's JSON document on the real stdout (also while a
    :func:`json_command` has pointed ``sys.stdout`` at stderr)."""
    out = _targets[-1] if _targets else sys.stdout
    out.write(dumps(obj) + "\n")
    out.flush()


def error_document(exc: BaseException) -> dict[str, Any]:
    """What an error says, as the JSON document of a failed command."""
    doc: dict[str, Any] = {
        "error": str(exc),
        "type": type(exc).__name__,
        "path": getattr(exc, "path", None) if not isinstance(exc, OSError) else exc.filename,
        "field": getattr(exc, "field", None),
    }
    if hasattr(exc, "stage"):
        doc.update(stage=exc.stage, hint=getattr(exc, "hint", None),
                   diagnostics=getattr(exc, "diagnostics", None) or {})
    if isinstance(exc, OSError) and doc["path"] is not None:
        doc["path"] = str(doc["path"])
    return doc


def json_command(run: Callable[[Any], int]) -> Callable[[Any], int]:
    """Wrap a subcommand's ``run(args)``: with ``args.json`` its stray prints go to stderr and an
    error (CorrelateError, OSError) is also written to stdout as :func:`error_document` before it
    propagates to the command's error handler."""
    from ..errors import CorrelateError

    @functools.wraps(run)
    def wrapper(args) -> int:
        if not getattr(args, "json", False):
            return run(args)
        _targets.append(sys.stdout)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return run(args)
        except BrokenPipeError:
            raise
        except (CorrelateError, OSError) as exc:
            emit(error_document(exc))
            raise
        finally:
            _targets.pop()

    return wrapper
