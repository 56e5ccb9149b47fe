# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Importing real files: SMLM tables, EM, LM and AFM images, in nanometres
#
# Read every sample file of a folder with `correlate.read`, which picks the reader from the
# suffix and a look at the first bytes and converts every length to nm; list what each became;
# put one localization table and one EM image in a scene; render the localizations and draw both
# with a scale bar.
#
# The files are the project's shared test files (`../shared/data/formats` beside the checkout, or
# `$CORRELATE_FORMATS_DIR`). Outputs go to `$CORRELATE_EXAMPLE_OUT` (default
# `example-output/02_real_file_import`); `CORRELATE_EXAMPLE_SMALL=1` reads only a few files.

# %%
import csv
import os
from pathlib import Path

import correlate
from correlate.elements import element_kind, pixel_size
from correlate.errors import CorrelateError
from correlate.plot import draw_overlay, save_figure
from correlate.render import render_gaussian, render_histogram

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
FORMATS = Path(os.environ.get("CORRELATE_FORMATS_DIR", HERE.parent.parent / "shared" / "data" / "formats"))
OUT = Path(os.environ.get("CORRELATE_EXAMPLE_OUT", "example-output/02_real_file_import"))
SMALL = os.environ.get("CORRELATE_EXAMPLE_SMALL", "0") not in ("", "0", "false", "no")

MANIFEST = FORMATS / "MANIFEST.tsv"
if not MANIFEST.exists():  # the rest runs on no files, so that the notebook still executes
    print(f"no sample files at {FORMATS}; set CORRELATE_FORMATS_DIR to a folder with MANIFEST.tsv")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Read every file of the manifest
#
# Sidecar files (a Picasso `.yaml`, the `.emi` of a `.ser`) are read through their main file.
# A file no reader accepts raises a `correlate` error that names the file and the problem: we
# list those too.

# %%
manifest = []
if MANIFEST.exists():
    with open(MANIFEST, newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh, delimiter="\t"))
files = [r["rel_path"] for r in manifest if not r["rel_path"].endswith((".yaml", ".emi"))]
if SMALL:
    wanted = ("smlm/testdata_locs.hdf5", "smlm/Thunderstorm_dstorm_data.csv", "em/HAADFscan.mrc")
    files = [f for f in files if f in wanted]

elements, rows = {}, []
for rel in files:
    try:
        el = correlate.read(FORMATS / rel)
    except CorrelateError as exc:
        rows.append((rel, "not read", str(exc).splitlines()[0][:90]))
        continue
    kind = element_kind(el)
    elements[rel] = el
    if kind == "image":
        px = ", ".join(f"{k} {v:.4g}" for k, v in pixel_size(el).items())
        rows.append((rel, f"image {el.attrs.get('modality')}", f"{dict(el.sizes)}; pixel nm: {px}"))
    else:
        rows.append((rel, "localizations", f"{len(el)} rows; columns {list(el.columns)[:8]}"))
for r in rows:
    print(f"{r[0]:<55} {r[1]:<16} {r[2]}")
with open(OUT / "import_summary.tsv", "w", newline="", encoding="utf-8") as fh:
    w = csv.writer(fh, delimiter="\t")
    w.writerow(["file", "element", "details"])
    w.writerows(rows)

# %% [markdown]
# ## 2. A scene with one localization table and one EM image
#
# These files come from different samples, so no registration here: each keeps its own frame
# (identity to world). `correlate info` on the store shows what it holds.

# %%
# the largest localization table and the largest EM image that were read
tables = [f for f in elements if element_kind(elements[f]) == "localizations" and len(elements[f]) > 0]
ems = [f for f in elements if element_kind(elements[f]) == "image" and elements[f].attrs.get("modality") == "em"]
smlm_name = max(tables, key=lambda f: len(elements[f]), default=None)
em_name = max(ems, key=lambda f: elements[f].sizes.get("y", 1) * elements[f].sizes.get("x", 1), default=None)
scene = correlate.Scene.create(OUT / "imported.ome.zarr", overwrite=True)
if smlm_name:
    scene.add("localizations", elements[smlm_name])
if em_name:
    em = elements[em_name]
    if "c" in em.dims or "z" in em.dims:  # keep one plane of a stack for this example
        em = em.isel({d: 0 for d in em.dims if d in ("c", "z")})
    scene.add("em", em)
print(scene.info())

# %% [markdown]
# ## 3. Render the localizations and draw the images with scale bars
#
# The histogram counts every localization inside the extent exactly; the Gaussian render uses
# each localization's own precision when the file has one.

# %%
smlm_figure = None  # a figure that ends a notebook cell displays inline
if smlm_name:
    locs = scene.get("localizations")
    hist = render_histogram(locs, pixel_size_nm=20.0, name="histogram")
    print(f"{smlm_name}: {len(locs)} localizations, {int(hist.sum())} counted in the histogram")
    has_precision = any(c in locs.columns for c in ("precision", "precision_x"))
    render = render_gaussian(locs, like=hist, min_precision_nm=10.0) if has_precision else hist
    smlm_figure = draw_overlay(render.assign_attrs(modality="smlm"),
                               title=f"{smlm_name} ({len(locs)} localizations)", base_cmap="magma")
    save_figure(smlm_figure, OUT / "smlm_render.png")
smlm_figure

# %%
em_figure = None
if em_name:
    em_figure = draw_overlay(scene.get("em"), title=em_name)
    save_figure(em_figure, OUT / "em.png")
print("correlate", correlate.__version__, "- outputs in", OUT)
em_figure
