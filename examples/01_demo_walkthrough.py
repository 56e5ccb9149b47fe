# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Walkthrough: a simulated correlative sample, end to end
#
# Simulate a small field of liposome-like nanoparticles with gold fiducials as EM, two-colour
# SMLM (antibody and corona), SIM and AFM would see it, each in its own frame; put everything in
# one OME-Zarr scene; register the SMLM colours onto EM with predicted error; measure each
# particle and count its labels; and draw the results.
#
# Runs headless (`python examples/01_demo_walkthrough.py`) or as a notebook (jupytext). Outputs go
# to `$CORRELATE_EXAMPLE_OUT` (default `example-output/01_demo_walkthrough`);
# `CORRELATE_EXAMPLE_SMALL=1` picks the 3 µm sample (seconds) instead of the 8 µm one.

# %%
import os
from pathlib import Path

from matplotlib.image import imsave

import correlate
from correlate.analysis import analyze_particles
from correlate.datasets import SampleConfig, simulate_sample
from correlate.plot import (
    particle_gallery,
    plot_counts_vs_size,
    plot_overlay,
    plot_radial_profiles,
    plot_size_distribution,
    radial_profiles,
    save_figure,
    make_report,
)
from correlate.registration import register_scene
from correlate.render import composite, render_gaussian, render_histogram

OUT = Path(os.environ.get("CORRELATE_EXAMPLE_OUT", "example-output/01_demo_walkthrough"))
SMALL = os.environ.get("CORRELATE_EXAMPLE_SMALL", "0") not in ("", "0", "false", "no")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Simulate a sample with known truth and store it as a scene
#
# The EM frame is the world frame; the SMLM, SIM and AFM elements arrive in their own frames with
# no transform known yet (`transforms="none"`), as they would from the microscopes.

# %%
config = SampleConfig.small(seed=0) if SMALL else SampleConfig(seed=0)
sample = simulate_sample(config)
scene = sample.to_scene(OUT / "sample.ome.zarr", transforms="none", overwrite=True)
print(scene.info())

# %% [markdown]
# ## 2. Render the localizations
#
# A histogram (exact counts per pixel) and a Gaussian render (each localization with its own
# precision) of both colours, in the SMLM camera frame, as a two-colour composite.

# %%
locs = {name: scene.get(name) for name in ("antibody", "corona")}
hist = render_histogram(locs, pixel_size_nm=20.0)
print("histogram: counted", {k: int(v) for k, v in hist.attrs["n_inside"].items()}, "of",
      {k: len(v) for k, v in locs.items()})
gauss = render_gaussian(locs, like=hist, min_precision_nm=5.0)
rgb = composite(gauss, colors={"antibody": "magenta", "corona": "lime"}, percentile=98, gamma=1.5)
imsave(OUT / "smlm_render.png", rgb)

# %% [markdown]
# ## 3. Register both SMLM colours onto EM
#
# Fiducials are detected in each element (gold beads in EM, bright persistent emitters in SMLM),
# paired without clicks, and fitted; the simplest model the chi-square test accepts is chosen and
# the predicted target registration error (TRE) is stored with the record.

# %%
for moving in ("antibody", "corona"):
    registration, record = register_scene(scene, moving, "em", model="auto")
    print(f"{moving} -> em")
    print(registration.summary())

# %% [markdown]
# ## 4. Particles: segment EM, measure, assign and count the labels

# %%
analysis = analyze_particles(scene, "em", labels=["antibody", "corona"])
table = analysis.table
table.to_csv(OUT / "particles.csv", index=False)
print(table[["particle_id", "equivalent_diameter_nm", "n_molecules_antibody", "n_molecules_corona"]].head())

# %% [markdown]
# ## 5. Figures: overlay, size distribution, labels against size, radial profiles, gallery

# Each plot function returns a Figure; a figure that ends a notebook cell displays inline.

# %%
overlay = plot_overlay(scene, "em", ["antibody", "corona"], show_particles=True, show_tre=True)
save_figure(overlay, OUT / "overlay.png")
print(overlay.correlate_caption)
overlay

# %%
fig = plot_size_distribution(table)
save_figure(fig, OUT / "size_distribution.png")
fig

# %%
fig = plot_counts_vs_size(table)
save_figure(fig, OUT / "counts_vs_size.png")
fig

# %%
em = scene.get("em")
in_em = {name: scene.map_points(scene.get(name), name, "em") for name in ("antibody", "corona")}
fig = plot_radial_profiles(radial_profiles(table, in_em))
save_figure(fig, OUT / "radial_profiles.png")
fig

# %%
fig = particle_gallery(em, table, in_em, n=8)
save_figure(fig, OUT / "gallery.png")
fig

# %% [markdown]
# The scene itself, as a notebook shows it: elements, how each is placed, registrations with
# their predicted error.

# %%
scene

# %% [markdown]
# ## 6. One HTML report with everything

# %%
report = make_report(scene, OUT / "report.html", base="em", labels=["antibody", "corona"])
print("wrote", report)
print("correlate", correlate.__version__, "- outputs in", OUT)
