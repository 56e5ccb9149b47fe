"""Registration records as the overlay reads them: the caption line and the latest record per
pair of elements."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["registration_summary", "records_for", "pick"]


def _fmt_nm(v) -> str | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(f):
        return None
    if abs(f) < 10:
        return f"{f:.2f} nm"
    return f"{f:.1f} nm" if abs(f) < 1000 else f"{f:.0f} nm"


def pick(rec: Mapping[str, Any], *keys):
    """The first of ``keys`` set in a record (or in its ``errors`` / ``error`` mapping); None if none is."""
    for k in keys:
        if k in rec and rec[k] is not None:
            return rec[k]
    errs = rec.get("errors") or rec.get("error") or {}
    if isinstance(errs, Mapping):
        for k in keys:
            if k in errs and errs[k] is not None:
                return errs[k]
    return None


def registration_summary(record: Mapping[str, Any]) -> str:
    """One line with a registration record's model and error figures (nm).

    Reads the keys of the records :func:`correlate.registration.registration_record` writes
    (``moving``, ``fixed``, ``model``, ``n_pairs``, ``n_used``, ``n_outliers``, ``fre_rms_nm``,
    ``predicted_tre_hull`` / ``predicted_tre_field``, ``loo_rms_nm``, ``chi2``, ``dof``,
    ``pvalue``) and a few common aliases, skipping any that is absent.
    """
    src = pick(record, "moving", "source", "source_system")
    dst = pick(record, "fixed", "target", "target_system")
    model = pick(record, "model", "type") or "?"
    head = f"{src} -> {dst}: " if src or dst else ""
    parts = [f"model {model}"]
    n = pick(record, "n_pairs", "n_fiducials", "n_landmarks", "n")
    nu = pick(record, "n_used", "n_inliers")
    if n is not None:
        txt = f"{nu}/{n} fiducials used" if nu is not None else f"{n} fiducials"
        no = pick(record, "n_outliers")
        if no:
            txt += f" ({no} outlier{'s' if no != 1 else ''})"
        parts.append(txt)
    s = _fmt_nm(pick(record, "fre_rms_nm", "fre_nm", "fre"))
    if s:
        parts.append(f"FRE {s}")
    tre = None
    for key, where in (("predicted_tre_hull", "inside fiducials"), ("predicted_tre_field", "over the field")):
        d = record.get(key)
        if isinstance(d, Mapping) and d:
            med = _fmt_nm(d.get("tre_rms_median_nm"))
            r95 = _fmt_nm(d.get("tre_r95_p95_nm"))
            if med:
                tre = f"predicted TRE {med} (median {where}" + (f"; 95 % radius up to {r95})" if r95 else ")")
                break
    if tre is None:
        v = _fmt_nm(pick(record, "tre_rms_nm", "predicted_tre_nm", "tre_nm"))
        if v:
            tre = f"predicted TRE {v}"
    if tre:
        parts.append(tre)
    s = _fmt_nm(pick(record, "loo_rms_nm", "loo_nm", "loo"))
    if s:
        parts.append(f"leave-one-out {s}")
    chi, dof, pv = pick(record, "chi2"), pick(record, "dof"), pick(record, "pvalue")
    try:
        if chi is not None:
            t = f"chi² {float(chi):.3g}"
            if dof is not None:
                t += f"/{float(dof):.3g} dof"
            if pv is not None:
                t += f" (p {float(pv):.2g})"
            parts.append(t)
    except (TypeError, ValueError):
        pass
    return head + ", ".join(parts)


def records_for(scene, names: Sequence[str]) -> list[Mapping[str, Any]]:
    try:
        recs = list(scene.registrations())
    except Exception:  # noqa: BLE001 - a scene without registrations
        return []
    out = {}
    for r in recs:
        src = pick(r, "moving", "source", "source_system")
        dst = pick(r, "fixed", "target", "target_system")
        if src in names or dst in names or not names:
            out[(src, dst)] = r  # the latest record per pair wins
    return list(out.values())
