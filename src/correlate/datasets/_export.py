"""Write a simulated sample as ordinary microscope files (for import demos and reader tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorrelateError

__all__ = ["write_files"]

_THUNDERSTORM = [
    ("id", None),
    ("frame", None),
    ("x [nm]", "x"),
    ("y [nm]", "y"),
    ("sigma [nm]", "sigma"),
    ("intensity [photon]", "photons"),
    ("offset [photon]", "background"),
    ("uncertainty [nm]", "precision"),
]


def _write_thunderstorm(df, path: Path, truth_columns: bool) -> None:
    import pandas as pd

    out = pd.DataFrame({"id": np.arange(1, len(df) + 1), "frame": df["frame"].to_numpy() + 1})
    for label, col in _THUNDERSTORM[2:]:
        out[label] = df[col].to_numpy(float)
    if truth_columns:
        for c in ("true_particle_id", "true_molecule_id", "true_event_id", "true_fiducial_id"):
            if c in df.columns:
                out[c] = df[c].to_numpy()
    # ThunderSTORM quotes every header label
    with open(path, "w", newline="", encoding="utf-8") as fh:
        fh.write(",".join(f'"{c}"' for c in out.columns) + "\n")
        out.to_csv(fh, header=False, index=False, float_format="%.4f", lineterminator="\n")


def _write_ome_tiff(data: np.ndarray, px_nm: float, path: Path, name: str, channels=None) -> None:
    import tifffile

    arr = np.asarray(data)
    meta = {}
    if arr.ndim == 3:
        meta["Channel"] = {"Name": [str(c) for c in channels]}
    tifffile.imwrite(
        path,
        arr,
        ome=True,
        metadata={
            "axes": "CYX" if arr.ndim == 3 else "YX",
            **meta,
            "Name": name,
            "PhysicalSizeX": float(px_nm),
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": float(px_nm),
            "PhysicalSizeYUnit": "nm",
        },
    )


def _write_mrc(data: np.ndarray, px_nm: float, path: Path) -> None:
    import mrcfile

    arr = np.asarray(data)
    if arr.dtype not in (np.float32, np.uint16, np.int16, np.int8):
        arr = arr.astype(np.float32)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(arr)
        mrc.voxel_size = (px_nm * 10.0, px_nm * 10.0, 0.0)  # Å; z 0: a single 2-D image


def write_files(sample: Any, directory, *, truth: bool = True, truth_columns: bool = False,
                overwrite: bool = False) -> dict[str, Path]:
    """Write the sample as files a microscope user would bring.

    * ``em.mrc`` (MRC, voxel size in Å), ``sim.ome.tif`` and ``afm.ome.tif`` (OME-TIFF, physical
      pixel size in nm; the AFM values are heights in nm),
    * ``antibody.csv`` and ``corona.csv`` in ThunderSTORM's CSV layout (nm, frames from 1),
    * with ``truth=True``: ``truth_particles.csv``, ``truth_fiducials.csv``,
      ``truth_molecules.csv``, ``truth_drift.csv``, ``truth_spurious.csv`` (persistent spots
      that are not gold) and ``truth_transforms.json`` (each element's transform to world as
      NGFF JSON, axes z, y, x).

    Every image's pixel centre ``i`` lands at ``i * pixel`` nm when read back, which is the frame
    the truth transforms start from.

    Parameters
    ----------
    sample
        A :class:`~correlate.datasets.Sample`.
    directory
        Output folder (created).
    truth_columns
        Keep the ``true_*`` columns in the localization CSVs.
    overwrite
        Replace existing files; otherwise an existing file raises :class:`CorrelateError`.

    Returns
    -------
    dict
        name -> path of every file written.
    """
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = sample.config
    plan: dict[str, Path] = {}
    if sample.em is not None:
        plan["em"] = out_dir / "em.mrc"
    if sample.sim is not None:
        plan["sim"] = out_dir / "sim.ome.tif"
    if sample.afm is not None:
        plan["afm"] = out_dir / "afm.ome.tif"
    for label in sample.smlm:
        plan[label] = out_dir / f"{label}.csv"
    if truth:
        for k in ("particles", "fiducials", "molecules", "drift", "spurious"):
            plan[f"truth_{k}"] = out_dir / f"truth_{k}.csv"
        plan["truth_transforms"] = out_dir / "truth_transforms.json"
    if not overwrite:
        exist = [str(p) for p in plan.values() if p.exists()]
        if exist:
            raise CorrelateError(f"files exist ({', '.join(exist)}); pass overwrite=True", path=out_dir)
    if "em" in plan:
        _write_mrc(sample.em.values, cfg.em_pixel_nm, plan["em"])
    if "sim" in plan:
        ch = sample.sim.coords["c"].values if "c" in sample.sim.dims else None
        _write_ome_tiff(sample.sim.values, cfg.sim_pixel_nm, plan["sim"], "sim", ch)
    if "afm" in plan:
        _write_ome_tiff(sample.afm.values, cfg.afm_pixel_nm, plan["afm"], "afm height (nm)")
    for label, df in sample.smlm.items():
        _write_thunderstorm(df, plan[label], truth_columns)
    if truth:
        t = sample.truth
        t.particles.to_csv(plan["truth_particles"], index=False)
        t.fiducials.to_csv(plan["truth_fiducials"], index=False)
        t.molecules.to_csv(plan["truth_molecules"], index=False)
        t.drift.to_csv(plan["truth_drift"], index=False)
        t.spurious.to_csv(plan["truth_spurious"], index=False)
        doc = {
            "description": "element frame -> world (= EM frame), NGFF 0.6 JSON, axes z, y, x, nm",
            "seed": int(cfg.seed),
            "transforms": {k: v.to_ngff() for k, v in t.transforms.items()},
        }
        plan["truth_transforms"].write_text(json.dumps(doc, indent=1))
    return plan
