"""``correlate register``: detector options from the flags, and what detection estimated or saw."""

from __future__ import annotations

import sys
from typing import Any, Mapping

from ..errors import CorrelateError

_IMAGE_FLAGS = {"bead_diameter": "diameter_nm", "psf_fwhm": "psf_fwhm_nm", "polarity": "polarity"}
_LOCS_FLAGS = {"min_persistence": "min_persistence"}


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("none", "auto"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return float(text)
    except ValueError:
        return text.strip()


def detector_kwargs(args, kinds: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``{"moving": {...}, "fixed": {...}}`` detector options: the shared flags on every side of
    their kind, then ``--detect SIDE:KEY=VALUE`` on one side. A flag that fits no side is an
    error (it would otherwise be ignored)."""
    out: dict[str, dict[str, Any]] = {"moving": {}, "fixed": {}}
    for flags, kind, name in ((_IMAGE_FLAGS, "image", "images"), (_LOCS_FLAGS, "localizations", "localizations")):
        for flag, key in flags.items():
            v = getattr(args, flag, None)
            if v is None or (flag == "polarity" and v == "auto"):
                continue
            sides = [s for s in ("moving", "fixed") if kinds[s] == kind and getattr(args, f"fiducials_{s}") is None]
            if not sides:
                raise CorrelateError(
                    f"--{flag.replace('_', '-')} is an option of the fiducial detector for {name}, but neither "
                    f"{args.moving!r} ({kinds['moving']}) nor {args.fixed!r} ({kinds['fixed']}) is detected as one",
                    field=flag.replace("_", "-"))
            if v is not None and flag != "polarity" and not v > 0:
                raise CorrelateError(f"--{flag.replace('_', '-')} must be > 0, got {v}", field=flag.replace("_", "-"))
            if flag == "min_persistence" and not v <= 1:
                raise CorrelateError(f"--min-persistence is a fraction of frames (0-1], got {v}",
                                     field="min-persistence")
            for s in sides:
                out[s][key] = v
    for item in args.detect or []:
        side, sep, rest = item.partition(":")
        key, eq, val = rest.partition("=")
        if not sep or not eq or side not in ("moving", "fixed") or not key.strip():
            raise CorrelateError(f"--detect takes SIDE:KEY=VALUE with SIDE moving or fixed, got {item!r}",
                                 field="detect")
        out[side][key.strip()] = _value(val)
    return out


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_detection(rec: Mapping[str, Any], args, kinds: Mapping[str, str]) -> None:
    """One line per side: how many fiducials, each estimated parameter with its source."""
    det = rec.get("detection") or {}
    for role, name in (("moving", args.moving), ("fixed", args.fixed)):
        d = det.get(role) or {}
        est = d.get("estimated") or {}
        src = d.get("source") or {}
        origin = "from " + str(getattr(args, f"fiducials_{role}")) if getattr(args, f"fiducials_{role}") else "detected"
        parts = [f"{k} {_fmt_value(v)}" + (f" ({src[k]})" if k in src else "") for k, v in est.items()
                 if k not in ("file",)]
        print(f"  {role} {name!r} ({kinds[role]}): {d.get('n', '?')} fiducials {origin}"
              + (f"; {', '.join(parts)}" if parts else ""))


def _lines(d: Any, indent: str = "  ", depth: int = 0) -> list[str]:
    out: list[str] = []
    if isinstance(d, Mapping):
        for k, v in d.items():
            if isinstance(v, (Mapping, list)) and v:
                out.append(f"{indent}{k}:")
                out.extend(_lines(v, indent + "  ", depth + 1))
            else:
                out.append(f"{indent}{k}: {_fmt_value(v)}")
    elif isinstance(d, list):
        for v in d[:8]:
            if isinstance(v, Mapping):
                out.append(indent + ", ".join(f"{k} {_fmt_value(x)}" for k, x in v.items()
                                              if not isinstance(x, (Mapping, list))))
            else:
                out.append(f"{indent}{_fmt_value(v)}")
        if len(d) > 8:
            out.append(f"{indent}... {len(d) - 8} more")
    return out if depth < 4 else [f"{indent}..."]


def print_failure(exc, args) -> None:
    """What the failing stage saw (counts, best candidates, best hypothesis) and the flag to try,
    on stderr (the error line itself follows from the command's error handler)."""
    err = sys.stderr
    stage = getattr(exc, "stage", None)
    print(f"registration of {args.moving!r} onto {args.fixed!r} stopped"
          + (f" at stage {stage}" if stage else " (the failing stage did not name itself)"), file=err)
    diag = getattr(exc, "diagnostics", None) or {}
    for line in _lines(diag):
        print(line, file=err)
    if getattr(exc, "hint", None):
        print(f"try: {exc.hint}", file=err)
    if args.diagnostics:
        print(f"diagnostics (JSON and figure) written to {args.diagnostics}", file=err)


def register_document(rec: Mapping[str, Any], args, kinds: Mapping[str, str]) -> dict[str, Any]:
    """The ``register --json`` document: the facts of the text output, then the whole record."""
    pairing = rec.get("pairing") or {}
    det = rec.get("detection") or {}
    detection = {}
    for role in ("moving", "fixed"):
        d = det.get(role) or {}
        given = getattr(args, f"fiducials_{role}")
        detection[role] = {
            "element": getattr(args, role), "kind": kinds[role], "n_fiducials": d.get("n"),
            "origin": "file" if given else ("manual" if pairing.get("method") == "manual" else "detected"),
            "file": str(given) if given else None,
            "estimated": {k: v for k, v in (d.get("estimated") or {}).items() if k != "file"},
            "source": dict(d.get("source") or {}),
        }
    return {
        "moving": args.moving, "fixed": args.fixed, "model": rec.get("model"), "reason": rec.get("reason"),
        "n_pairs": rec.get("n_pairs"), "pairing_method": pairing.get("method"),
        "n_detected_moving": pairing.get("n_detected_moving"), "n_detected_fixed": pairing.get("n_detected_fixed"),
        "landmarks_file": args.landmarks, "detection": detection, "mirrored": rec.get("mirrored"),
        "n_outliers": rec.get("n_outliers"), "outlier_ids": list(rec.get("outlier_ids") or []),
        "fre_rms_nm": rec.get("fre_rms_nm"), "loo_rms_nm": rec.get("loo_rms_nm"),
        "excess_fle_nm": (rec.get("error_model") or {}).get("excess_fle_nm", rec.get("excess_fle_nm")),
        "predicted_tre_field": rec.get("predicted_tre_field") or {},
        "predicted_tre_hull": rec.get("predicted_tre_hull") or {},
        "refinement": rec.get("refinement"), "notes": list(rec.get("notes") or []),
        "stored": not args.dry_run, "record_id": rec.get("id"),
        "files": {k: getattr(args, k) for k in ("report", "diagnostics", "bigwarp", "matrix") if getattr(args, k)},
        "record": dict(rec),
    }
