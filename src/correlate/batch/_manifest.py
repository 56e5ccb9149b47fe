"""The batch manifest: one row per sample, read and checked before anything runs.

A manifest is a CSV (``,``) or TSV (``.tsv``, tab) table. Columns:

``sample``
    The sample's name (letters, digits, ``.``, ``_``, ``-``); unique. Its outputs go to
    ``OUT/<sample>/``.
``file:<element>``
    A file imported as element ``<element>`` (relative paths are taken from the manifest's
    folder). A blank cell: the sample has no such element.
``import:<element>``
    Extra ``correlate import`` options for that element, e.g. ``--modality em --pixel-size 2``.
``register``
    Registrations in order, ``moving>fixed`` (or ``moving->fixed``) separated by ``;`` (e.g. ``antibody>em; sim>em``).
``register_args``
    Extra ``correlate register`` options for every registration of the row.
``structure``, ``labels``, ``particles_args``
    ``correlate particles --structure S --labels L [particles_args]``; no structure: no particle
    step.

Any other column is an error (a misspelt column would otherwise be ignored).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import CorrelateError

__all__ = ["SampleSpec", "read_manifest"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PLAIN = {"sample", "register", "register_args", "structure", "labels", "particles_args"}


@dataclass(frozen=True)
class SampleSpec:
    """One sample of a batch: its files and the pipeline steps to run on them.

    Attributes
    ----------
    name
        Sample name (its output folder).
    files
        Element name -> absolute file path, in manifest column order.
    import_args
        Element name -> extra ``correlate import`` arguments.
    registrations
        ``(moving, fixed)`` pairs, run in order.
    register_args
        Extra ``correlate register`` arguments for each registration.
    structure
        Element segmented by ``correlate particles`` (``None``: no particle step).
    labels
        Localization elements counted per particle.
    particles_args
        Extra ``correlate particles`` arguments.
    row
        1-based row of the manifest (for messages).
    """

    name: str
    files: dict[str, str]
    import_args: dict[str, list[str]] = field(default_factory=dict)
    registrations: list[tuple[str, str]] = field(default_factory=list)
    register_args: list[str] = field(default_factory=list)
    structure: str | None = None
    labels: list[str] = field(default_factory=list)
    particles_args: list[str] = field(default_factory=list)
    row: int = 0

    def commands(self, store: str, particles_out: str) -> list[list[str]]:
        """The ``correlate`` argument lists that make up this sample's pipeline."""
        cmds = [["import", store, path, "--name", name, *self.import_args.get(name, [])]
                for name, path in self.files.items()]
        cmds += [["register", store, "--moving", m, "--fixed", f, *self.register_args]
                 for m, f in self.registrations]
        if self.structure:
            cmds.append(["particles", store, "--structure", self.structure, "--labels", ",".join(self.labels),
                         "-o", particles_out, *self.particles_args])
        return cmds

    def fingerprint(self) -> str:
        """A digest of the row and of each input file's size and modification time: a completed
        sample is skipped on a rerun only while this is unchanged."""
        stats = {}
        for name, path in self.files.items():
            try:
                st = Path(path).stat()
                stats[name] = [st.st_size, st.st_mtime_ns]
            except OSError:
                stats[name] = None
        d = asdict(self)
        d.pop("row")
        blob = json.dumps([d, stats], sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _split(text: str, path: Path, column: str, row: int) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise CorrelateError(f"row {row}: cannot split the options ({exc})", path=path, field=column) from None


def _registrations(text: str, path: Path, row: int) -> list[tuple[str, str]]:
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        names = [s.strip() for s in re.split(r"-?>", part)]
        if len(names) != 2 or not all(names):
            raise CorrelateError(f"row {row}: {part!r} is not 'moving>fixed'", path=path, field="register")
        out.append((names[0], names[1]))
    return out


def _row_spec(row: dict[str, str], n: int, path: Path, file_cols: list[str], import_cols: list[str]) -> SampleSpec:
    name = row["sample"].strip()
    if not _NAME.match(name):
        raise CorrelateError(f"row {n}: sample name {name!r} must be letters, digits, '.', '_' or '-'",
                             path=path, field="sample")
    files = {}
    for col in file_cols:
        cell = row[col].strip()
        if cell:
            p = Path(cell).expanduser()
            files[col.split(":", 1)[1]] = str(p if p.is_absolute() else (path.parent / p).resolve())
    if not files:
        raise CorrelateError(f"row {n} ({name}): no file given", path=path, field="file:<element>")
    import_args = {}
    for col in import_cols:
        elem = col.split(":", 1)[1]
        if row[col].strip():
            if elem not in files:
                raise CorrelateError(f"row {n} ({name}): options for {elem!r}, which has no file", path=path, field=col)
            import_args[elem] = _split(row[col], path, col, n)
    regs = _registrations(row.get("register", ""), path, n)
    structure = row.get("structure", "").strip() or None
    labels = [s.strip() for s in row.get("labels", "").split(",") if s.strip()]
    if labels and not structure:
        raise CorrelateError(f"row {n} ({name}): labels without a structure", path=path, field="structure")
    return SampleSpec(
        name=name, files=files, import_args=import_args, registrations=regs,
        register_args=_split(row.get("register_args", ""), path, "register_args", n),
        structure=structure, labels=labels,
        particles_args=_split(row.get("particles_args", ""), path, "particles_args", n), row=n,
    )


def read_manifest(path: str | Path) -> list[SampleSpec]:
    """Read and check a batch manifest (see the module docstring for its columns).

    Raises
    ------
    CorrelateError
        Naming the manifest and the column of the first problem: an unknown column, a missing
        ``sample`` column, a duplicate or malformed name, a malformed ``register`` cell.
    """
    import pandas as pd

    path = Path(path)
    sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, comment="#", skipinitialspace=True)
    except FileNotFoundError:
        raise CorrelateError("manifest not found", path=path) from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CorrelateError(f"cannot read the manifest ({exc})", path=path) from None
    df.columns = [c.strip() for c in df.columns]
    if "sample" not in df.columns:
        raise CorrelateError(f"no 'sample' column (columns: {', '.join(df.columns)})", path=path, field="sample")
    file_cols = [c for c in df.columns if c.startswith("file:") and len(c) > 5]
    import_cols = [c for c in df.columns if c.startswith("import:") and len(c) > 7]
    unknown = [c for c in df.columns if c not in _PLAIN and c not in file_cols and c not in import_cols]
    if unknown:
        raise CorrelateError(f"unknown column(s) {', '.join(map(repr, unknown))}; columns are sample, file:<element>, "
                             f"import:<element>, {', '.join(sorted(_PLAIN - {'sample'}))}", path=path, field=unknown[0])
    specs = [_row_spec(row, i + 2, path, file_cols, import_cols) for i, row in enumerate(df.to_dict("records"))]
    seen: dict[str, int] = {}
    for s in specs:
        if s.name in seen:
            raise CorrelateError(f"sample {s.name!r} appears in rows {seen[s.name]} and {s.row}", path=path, field="sample")
        seen[s.name] = s.row
    if not specs:
        raise CorrelateError("the manifest lists no sample", path=path)
    return specs
