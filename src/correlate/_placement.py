"""Placement: which elements a registration (or a declaration) has put in a common frame.

An element is *placed* when its transform to world comes from a registration onto another
element, from an explicit declaration (the user, or a simulator's true transforms, say it sits in
world), or from the element it was derived from (drift correction, merging, filtering copy their
source's transform). Following the chain of registrations ends at an *anchor*: the fixed element
of a registration that is itself moving in none, or ``"world"`` for a declaration. An element
nothing placed is its own anchor. Two elements may be joined (mapped onto each other, assigned to
particles, overlaid) when they share an anchor, or when the user says the frames are aligned.

Everything here is a pure function of what the store holds: the element entries (with their
``added`` time), the registration records, the declaration records and the processing history.
A record is stale when an element it names was re-imported after it was made (the element's
version differs from the one the record saw) or, for a registration, when its fixed element was
registered anew afterwards (the moving element's stored transform was composed with the old one).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .errors import UnplacedError

__all__ = [
    "DECLARATION_KIND",
    "Placement",
    "declaration_record",
    "element_version",
    "joinable",
    "placement",
    "require_joinable",
]

WORLD = "world"
DECLARATION_KIND = "declared_alignment"
_DERIVING_STEPS = ("drift", "merge", "filter")


@dataclass(frozen=True)
class Placement:
    """Where an element stands.

    Attributes
    ----------
    element
        The element (labels resolve to their image).
    placed
        True when a registration, a declaration or a derivation from a placed element puts it
        in its anchor's frame.
    anchor
        The element (or ``"world"``) the chain of registrations ends at; the element itself
        when nothing placed it.
    links
        The records along the chain, nearest first: registration records, declaration records
        and ``{"kind": "derived", "element", "source"}`` steps.
    reason
        How it is placed, or why not (no registration, stale record...).
    error_known
        False when a link carries no error model (a declaration without ``tre_nm``).
    """

    element: str
    placed: bool
    anchor: str
    links: tuple[dict, ...] = ()
    reason: str = ""
    error_known: bool = True
    stale: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the ids of the links instead of the records)."""
        return {
            "element": self.element, "placed": self.placed, "anchor": self.anchor, "reason": self.reason,
            "error_known": self.error_known, "links": [link.get("id", link.get("kind")) for link in self.links],
            "stale": list(self.stale),
        }


#: Entry keys that change without the element's data changing (label images added later).
_NOT_VERSIONED = frozenset({"labels", "label_paths"})


def element_version(entry: Mapping[str, Any] | None) -> str | None:
    """A short fingerprint of an element's store entry (its ``added`` time, path, shape, rows...),
    which changes when the element is re-imported; label images added later do not change it."""
    if entry is None:
        return None
    e = {k: v for k, v in entry.items() if k not in _NOT_VERSIONED}
    return hashlib.sha1(json.dumps(e, sort_keys=True, default=str).encode()).hexdigest()[:16]


def declaration_record(element: str, entry: Mapping[str, Any] | None, *, reference: str = WORLD,
                       tre_nm: float | None = None, note: str = "") -> dict[str, Any]:
    """A declaration that ``element``'s stored transform places it in ``reference``'s frame.

    ``tre_nm``: the RMS error of that placement (nm) when known (0 for a simulator's true
    transform); None leaves every error carried through it unknown (NaN).
    """
    return {
        "kind": DECLARATION_KIND,
        "element": element,
        "reference": reference,
        "tre_nm": None if tre_nm is None else float(tre_nm),
        "note": note,
        "element_versions": {element: element_version(entry)},
        "added": (entry or {}).get("added"),
    }


def _base(name: str) -> str:
    parts = name.split("/")
    return parts[0] if len(parts) == 3 and parts[1] == "labels" else name


def _stale_reason(rec: Mapping[str, Any], names: Sequence[str], entries: Mapping[str, Mapping]) -> str | None:
    versions = rec.get("element_versions") or {}
    created = str(rec.get("created") or "")
    for n in names:
        if n == WORLD:
            continue
        e = entries.get(n)
        if e is None:
            return f"{n!r} is no longer in the store"
        if n in versions:
            if versions[n] != element_version(e):
                return f"{n!r} was re-imported after record {rec.get('id')}"
        elif created and str(e.get("added") or "") > created:
            return f"{n!r} was re-imported after record {rec.get('id')}"
    return None


def _derivation(name: str, entry: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> dict | None:
    added = str(entry.get("added") or "")
    for step in reversed(list(history)):
        if step.get("source") and step.get("step") in _DERIVING_STEPS and str(step.get("time") or "") >= added:
            return {"kind": "derived", "element": name, "source": str(step["source"]), "time": step.get("time")}
    return None


def placement(
    name: str,
    *,
    entries: Mapping[str, Mapping[str, Any]],
    registrations: Sequence[Mapping[str, Any]],
    declarations: Sequence[Mapping[str, Any]] = (),
    history: Callable[[str], Sequence[Mapping[str, Any]]] | None = None,
) -> Placement:
    """The :class:`Placement` of element ``name`` (``"world"`` is its own anchor, placed).

    Parameters
    ----------
    entries
        ``{element: store entry}`` (``added`` time and what :func:`element_version` hashes).
    registrations
        Registration records, oldest first (``moving``, ``fixed``, ``created``, ``id``...).
    declarations
        Declaration records (:func:`declaration_record`, with ``created`` and ``id``).
    history
        ``element -> processing steps`` (for derived elements), or None.
    """
    return _resolve(_base(name), entries, list(registrations), list(declarations), history, set())


def _latest(records: Sequence[Mapping], key: str, name: str) -> tuple[int, Mapping] | None:
    for i in range(len(records) - 1, -1, -1):
        if records[i].get(key) == name:
            return i, records[i]
    return None


def _resolve(name, entries, regs, decls, history, seen) -> Placement:
    if name == WORLD:
        return Placement(WORLD, True, WORLD, reason="the world frame")
    if name in seen:
        return Placement(name, False, name, reason="registrations form a cycle")
    seen = seen | {name}
    entry = entries.get(name)
    if entry is None:
        return Placement(name, False, name, reason=f"no element {name!r} in the store")
    if entry.get("kind") == "table":  # a table lives in the frame its coordinate_system names
        cs = str((entry.get("coordinate_system") or {}).get("name") or WORLD)
        up = _resolve(cs, entries, regs, decls, history, seen) if cs != name else None
        if up is not None:
            return Placement(name, up.placed, up.anchor, up.links, f"a table in {cs}'s frame ({up.reason})",
                             up.error_known, up.stale)
    moving_regs = [r for r in regs if r.get("moving") and r.get("fixed")]
    # the newest event that set the element's transform decides; a stale one leaves it unplaced
    # (older records described a transform it no longer has). Ties: registration, explicit
    # declaration, derivation, then the implicit declaration of a transform given to Scene.add.
    cands = []
    reg = _latest(moving_regs, "moving", name)
    if reg is not None:
        cands.append((str(reg[1].get("created") or ""), 3, "registration", reg))
    dec = _latest(decls, "element", name)
    if dec is not None:
        cands.append((str(dec[1].get("created") or ""), 0 if dec[1].get("implicit") else 2, "declaration", dec))
    der = _derivation(name, entry, history(name) if history is not None else ())
    if der is not None:
        cands.append((str(der.get("time") or ""), 1, "derivation", (-1, der)))
    if not cands:
        return Placement(name, False, name, (), "no registration places it")
    if reg is not None and dec is not None and dec[1].get("n_registrations") is not None:
        # records made within one second: the declaration saw how many registrations existed
        pos = next(k for k, r in enumerate(regs) if r is reg[1])
        loser = "registration" if int(dec[1]["n_registrations"]) > pos else "declaration"
        cands = [c for c in cands if c[2] != loser]
    _, _, kind, (i, rec) = max(cands, key=lambda c: (c[0], c[1]))
    if kind == "declaration":
        return _declared(name, rec, entries, regs, decls, history, seen)
    if kind == "derivation":
        return _derived(name, rec, entry, entries, moving_regs, regs, decls, history, seen)
    fixed = str(rec["fixed"])
    why = _stale_reason(rec, [name, fixed], entries)
    if why is None:
        later = _latest(moving_regs[i + 1:], "moving", fixed)
        if later is not None:
            why = f"{fixed!r} was registered again (record {later[1].get('id')}) after record {rec.get('id')}"
    if why:
        return Placement(name, False, name, (), f"its registration is stale: {why}", True,
                         (f"registration {rec.get('id')}: {why}",))
    up = _resolve(fixed, entries, regs, decls, history, seen)
    return Placement(name, True, up.anchor, (dict(rec),) + up.links,
                     f"registered onto {fixed} (record {rec.get('id')})", up.error_known)


def _declared(name, rec, entries, regs, decls, history, seen) -> Placement:
    why = _stale_reason(rec, [name], entries)
    if why:
        return Placement(name, False, name, (), f"its declaration is stale: {why}", True,
                         (f"declaration {rec.get('id')}: {why}",))
    ref = str(rec.get("reference") or WORLD)
    up = _resolve(ref, entries, regs, decls, history, seen) if ref != WORLD else None
    anchor = WORLD if up is None else up.anchor
    links = (dict(rec),) + (() if up is None else up.links)
    known = rec.get("tre_nm") is not None and (up is None or up.error_known)
    return Placement(name, True, anchor, links, f"declared aligned with {ref} ({rec.get('note') or 'user'})", known)


def _derived(name, der, entry, entries, moving_regs, regs, decls, history, seen) -> Placement:
    src = der["source"]
    src_entry = entries.get(src)
    if src_entry is None or str(src_entry.get("added") or "") > str(der.get("time") or ""):
        why = f"{src!r} was re-imported (or removed) after {name!r} was derived from it"
        return Placement(name, False, name, (), why, True, (why,))
    src_reg = _latest(moving_regs, "moving", src)
    if src_reg is not None and str(src_reg[1].get("created") or "") > str(entry.get("added") or ""):
        why = f"{src!r} was registered (record {src_reg[1].get('id')}) after {name!r} was derived from it"
        return Placement(name, False, name, (), why, True, (why,))
    up = _resolve(src, entries, regs, decls, history, seen)
    return Placement(name, up.placed, up.anchor, (der,) + up.links, f"derived from {src!r} ({up.reason})",
                     up.error_known, up.stale)


def joinable(a: Placement, b: Placement) -> bool:
    """True when both placements end at the same anchor (one may be the other's anchor)."""
    return a.anchor == b.anchor


def require_joinable(a: Placement, b: Placement, *, assume_aligned: bool = False, action: str = "join",
                     store: str = "STORE") -> None:
    """Raise :class:`~correlate.errors.UnplacedError` unless ``a`` and ``b`` may be joined.

    The message names the element(s) no registration placed (or the two anchors), the command
    that would place them and ``--assume-aligned`` / ``assume_aligned=True``.
    """
    if assume_aligned or joinable(a, b):
        return
    unplaced = [p for p in (a, b) if not p.placed and p.element != WORLD]
    if unplaced:
        what = " and ".join(f"{p.element!r} is unplaced ({p.reason})" for p in unplaced)
        if len(unplaced) == 2:
            cmd = f"correlate register {store} --moving {a.element} --fixed {b.element}"
        else:
            p = unplaced[0]
            q = b if p is a else a
            fixed = q.element if q.anchor == WORLD else q.anchor
            cmd = (f"correlate register {store} --moving {p.element} --fixed {fixed}" if fixed != WORLD else
                   f"correlate register {store} --moving {p.element} --fixed ELEMENT_IN_WORLD` or declare it "
                   f"(`Scene.declare_aligned({p.element!r})`")
        msg = (f"cannot {action} {a.element!r} and {b.element!r}: {what}. "
               f"Run `{cmd}`, or pass --assume-aligned (assume_aligned=True) if the frames "
               "are already aligned")
    else:
        msg = (f"cannot {action} {a.element!r} and {b.element!r}: they are placed in different frames "
               f"({a.element!r} via {a.anchor!r}, {b.element!r} via {b.anchor!r}). Register one onto the other "
               f"(`correlate register {store} --moving {a.anchor} --fixed {b.anchor}`) or pass --assume-aligned "
               "(assume_aligned=True) if the frames are already aligned")
    raise UnplacedError(
        msg, stage="placement", hint="--assume-aligned",
        diagnostics={"placements": [a.to_dict(), b.to_dict()]},
    )
