"""The built-in demo: a simulated correlative sample run through the whole pipeline.

Every step prints what it found beside the simulator's ground truth, so the demo doubles as an
end-to-end check: drift correction, colour alignment, registration of SMLM, SIM and AFM onto EM
(predicted and true error), particle detection and sizing, and label counts per particle.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["run_demo", "registration_truth_error", "match_particles"]


def _say(msg: str) -> None:
    print(msg, flush=True)


def registration_truth_error(fitted, true, points: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """True registration error (nm) at ``points`` of the moving frame.

    ``fitted`` and ``true`` map the moving frame to world; ``offset`` is a constant shift of the
    fitted frame relative to the true one (what a drift correction referenced to another frame
    leaves), so the fitted transform is evaluated at ``points + offset``.
    """
    p = np.asarray(points, float)
    q = p if offset is None else p + np.asarray(offset, float)
    return np.linalg.norm(fitted.apply(q) - true.apply(p), axis=1)


def match_particles(found: pd.DataFrame, truth: pd.DataFrame, max_dist_fraction: float = 0.5) -> pd.DataFrame:
    """Pair detected particles with true ones (nearest centre within ``max_dist_fraction`` x the
    true diameter, one to one). Returns truth rows with ``found_index`` (-1 if missed)."""
    from scipy.optimize import linear_sum_assignment

    out = truth.copy()
    out["found_index"] = -1
    if len(found) == 0 or len(truth) == 0:
        return out
    radius = max_dist_fraction * truth["diameter_nm"].to_numpy()
    cost = np.linalg.norm(truth[["x", "y"]].to_numpy()[:, None] - found[["x", "y"]].to_numpy()[None], axis=2)
    big = 1e12
    cost = np.where(cost <= radius[:, None], cost, big)
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < big
    out.iloc[r[ok], out.columns.get_loc("found_index")] = c[ok]
    return out


def run_demo(
    out: str | Path = "demo-output",
    *,
    seed: int = 0,
    small: bool = False,
    drift: bool = True,
    simulate_only: bool = False,
) -> dict[str, Any]:
    """Simulate a sample, run the pipeline and compare each result with the truth.

    Parameters
    ----------
    out
        Output folder; receives ``sample.ome.zarr``, ``overlay.png``, ``report.html`` and plots.
    seed
        Simulation seed.
    small
        A 3 µm field (seconds) instead of the default 8 µm one.
    drift
        Simulate stage drift and a chromatic offset (and correct them).
    simulate_only
        Stop after writing the simulated scene.

    Returns
    -------
    dict
        The figures printed: drift, registration, particle and count errors (nm, fractions).
    """
    from .datasets import SampleConfig, simulate_sample

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    t0 = time.perf_counter()

    # real beads carry a systematic error of a few nm per bead and modality
    cfg = (SampleConfig.small(seed=seed) if small else SampleConfig(seed=seed)).replace(fiducial_systematic_nm=2.0)
    if drift:
        cfg = cfg.replace(
            drift={"linear_nm": 60.0, "oscillation_nm": 20.0},
            chromatic={"offset_nm": (15.0, -10.0), "scale": 1.004},
        )
    sample = simulate_sample(cfg)
    truth = sample.truth
    store = out / "sample.ome.zarr"
    scene = sample.to_scene(store, transforms="none", truth_table=True, overwrite=True)
    _say(f"[1] simulated {len(truth.particles)} particles, {len(truth.fiducials)} fiducials; "
         f"EM {sample.em.shape[1]}x{sample.em.shape[0]} px at {cfg.em_pixel_nm} nm; "
         f"SMLM {', '.join(f'{k} {len(v)} locs' for k, v in sample.smlm.items())}")
    _say(f"    scene written: {store}")
    results["store"] = str(store)
    if simulate_only:
        return results

    labels, offsets = _drift_step(scene, truth, out, drift, results)
    _registration_step(scene, truth, labels, offsets, results)
    labels = _colour_step(scene, labels)
    table = _particles_step(scene, cfg, truth, labels, results)
    csv_path = out / "particles.csv"
    table.to_csv(csv_path, index=False)

    from .plot import make_report, plot_overlay, save_figure

    fig = plot_overlay(scene, "em", labels, show_particles=True, show_tre=True)
    overlay_path = save_figure(fig, out / "overlay.png")
    report_path = make_report(scene, out / "report.html", base="em", labels=labels)
    results["overlay"] = str(overlay_path)
    results["report"] = str(report_path)
    _say(f"[6] overlay {overlay_path}; report {report_path}; particle table {csv_path}")
    _say(f"done in {time.perf_counter() - t0:.1f} s. Inspect the store with: correlate info {store}")
    return results


def _drift_step(scene, truth, out: Path, drift: bool, results: dict) -> tuple[list[str], dict[str, np.ndarray]]:
    """Step 2: drift correction of each SMLM colour from its own beads (the colours share the
    stage). Returns the localization elements to use next and the constant offset (nm) each
    correction leaves relative to the truth."""
    from .smlm import drift_correct_element

    labels = ["antibody", "corona"]
    if not drift:
        return labels, {n: np.zeros(2) for n in labels}
    offsets: dict[str, np.ndarray] = {}
    tdrift = truth.drift
    for name in labels:
        res = drift_correct_element(scene, name, method="auto", out=f"{name}_corrected",
                                    plot=out / f"drift_{name}.png", overwrite=True)
        est = res["drift"]
        d_true = tdrift.set_index("frame").reindex(est.frames)[["dx", "dy"]].to_numpy()
        diff = d_true - est.values[:, :2]
        offsets[name] = diff.mean(axis=0)
        rms = float(np.sqrt(np.mean(np.sum((diff - offsets[name]) ** 2, axis=1))))
        results[f"drift_residual_rms_nm_{name}"] = rms
        _say(f"[2] drift {name}: method {est.method}, true residual drift {rms:.2f} nm RMS "
             f"(estimated {res['summary']['residual_drift_rms_nm']:.2f} nm); plot {res['plot']}")
    return [f"{n}_corrected" for n in labels], offsets


def _registration_step(scene, truth, labels: list[str], offsets: dict[str, np.ndarray], results: dict) -> None:
    """Step 3: registration onto EM (world) of the SMLM antibody colour, SIM and AFM. The
    simulator's EM frame is world, so each true transform (own frame -> world) is also own frame
    -> EM."""
    from .registration import register_scene
    from .registration._register import _hull_mask

    for moving, true_key in ((labels[0], "smlm"), ("sim", "sim"), ("afm", "afm")):
        reg, _ = register_scene(scene, moving, "em", model="auto")
        base = moving.replace("_corrected", "")
        true_t = truth.transforms[true_key]
        # control points: a grid inside the hull of the fiducials used (moving frame)
        used = reg.landmarks.source[reg.landmarks.used]
        lo, hi = used.min(axis=0), used.max(axis=0)
        g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 15), np.linspace(lo[1], hi[1], 15)), -1).reshape(-1, 2)
        g = g[_hull_mask(g, used)]
        fitted = scene.transform_to_world(moving)
        err = registration_truth_error(fitted, true_t, g, offsets.get(base))
        pred = reg.fit.tre_rms(g)
        results[f"registration_{base}"] = {
            "model": reg.model, "n_pairs": int(reg.landmarks.used.sum()),
            "fre_rms_nm": float(reg.fit.fre_rms), "loo_rms_nm": float(reg.loo_rms),
            "true_error_median_nm": float(np.median(err)), "true_error_p95_nm": float(np.percentile(err, 95)),
            "predicted_tre_rms_median_nm": float(np.median(pred)),
        }
        r = results[f"registration_{base}"]
        _say(f"[3] register {moving} -> em: {r['n_pairs']} pairs, model {reg.model} ({reg.reason}); "
             f"FRE {r['fre_rms_nm']:.2f} nm, LOO {r['loo_rms_nm']:.2f} nm; inside the fiducial hull: "
             f"predicted TRE median {r['predicted_tre_rms_median_nm']:.2f} nm, true error median "
             f"{r['true_error_median_nm']:.2f} nm (95th pct {r['true_error_p95_nm']:.2f} nm)")


def _colour_step(scene, labels: list[str]) -> list[str]:
    """Step 4: the corona colour onto the (registered) antibody colour, from the shared beads."""
    from .smlm import align_colour_elements

    res = align_colour_elements(scene, labels[1], labels[0], out="corona_aligned", overwrite=True)
    summ = res["summary"]
    _say(f"[4] colour alignment corona -> antibody: model {summ.get('model')}, "
         f"{summ.get('n_beads', summ.get('n_pairs', '?'))} beads, residual {summ.get('fre_rms_nm', float('nan')):.2f} nm RMS")
    return [labels[0], "corona_aligned"]


def _particles_step(scene, cfg, truth, labels: list[str], results: dict) -> pd.DataFrame:
    """Step 5: particles in EM with the labels counted per particle, scored against the truth.

    Counting molecules from blinks needs the dye's events per molecule, measured on a sparse
    calibration acquisition (simulated here with the same imaging settings), and the labelling's
    detection efficiency (a calibration the user supplies; here the simulator's setting).
    """
    from .analysis import analyze_particles
    from .datasets import simulate_calibration

    calibration = simulate_calibration(cfg)
    for label, cal_locs in calibration.items():
        scene.add(f"{label}_calibration", cal_locs, overwrite=True)
    analysis = analyze_particles(
        scene, "em", labels=labels,
        events_per_molecule={labels[0]: "antibody_calibration", labels[1]: "corona_calibration"},
        detection_efficiency=cfg.detection_efficiency,
    )
    table = analysis.table
    tp = truth.particles
    eval_truth = tp[(~tp["edge"]) & (tp["diameter_nm"] >= 40)]
    found = table[~table["edge"]] if "edge" in table.columns else table
    m = match_particles(found.reset_index(drop=True), eval_truth.reset_index(drop=True))
    hit = m["found_index"] >= 0
    recall = float(hit.mean()) if len(m) else float("nan")
    precision = float(hit.sum() / max(len(found), 1))
    fi = m.loc[hit, "found_index"].to_numpy()
    d_err = found.reset_index(drop=True).loc[fi, "equivalent_diameter_nm"].to_numpy() - m.loc[hit, "diameter_nm"].to_numpy()
    results["particles"] = {
        "n_found": int(len(table)), "recall": recall, "precision": precision,
        "diameter_error_median_abs_nm": float(np.median(np.abs(d_err))) if len(d_err) else float("nan"),
        "diameter_error_p95_abs_nm": float(np.percentile(np.abs(d_err), 95)) if len(d_err) else float("nan"),
    }
    p = results["particles"]
    _say(f"[5] particles: {p['n_found']} found; against the truth (>= 40 nm, not cut by the edge): recall "
         f"{recall:.1%}, precision {precision:.1%}; diameter error median {p['diameter_error_median_abs_nm']:.2f} nm, "
         f"95th pct {p['diameter_error_p95_abs_nm']:.2f} nm")
    ref = found.reset_index(drop=True).loc[fi]
    _score_assignments(scene, analysis, labels, ref, m, hit, results)
    _score_molecules(labels, ref, m, hit, results)
    return table


def _score_assignments(scene, analysis, labels: list[str], ref: pd.DataFrame, m: pd.DataFrame, hit, results: dict) -> None:
    """Assignment of localizations, scored with the simulator's per-localization truth."""
    found_to_true = dict(zip(ref["particle_id"].to_numpy(), m.loc[hit, "particle_id"].to_numpy()))
    for label, truth_label in zip(labels, ("antibody", "corona")):
        asg = analysis.assignments.get(label)
        locs = scene.get(label, columns=["true_particle_id"])
        if asg is None or "true_particle_id" not in locs.columns:
            continue
        true_pid = locs["true_particle_id"].to_numpy()
        got = pd.Series(asg["particle_id"].to_numpy()).map(found_to_true).fillna(-1).to_numpy()
        scored = np.isin(true_pid, list(found_to_true.values()))
        results[f"assignment_{truth_label}"] = {
            "assigned_to_own_particle": float(np.mean(got[scored] == true_pid[scored])) if scored.any() else float("nan"),
            "background_assigned": float(np.mean(asg["particle_id"].to_numpy()[true_pid == -1] >= 0))
            if (true_pid == -1).any() else float("nan"),
        }
        a = results[f"assignment_{truth_label}"]
        _say(f"    {truth_label}: {a['assigned_to_own_particle']:.1%} of particle localizations assigned to their "
             f"particle, {a['background_assigned']:.1%} of background localizations assigned to any")


def _score_molecules(labels: list[str], ref: pd.DataFrame, m: pd.DataFrame, hit, results: dict) -> None:
    """Molecules per particle against the truth, and the size-count correlation."""
    for label, truth_label in zip(labels, ("antibody", "corona")):
        col = f"n_molecules_{label}"
        if col not in ref.columns:
            continue
        est = ref[col].to_numpy(float)
        true_n = m.loc[hit, f"n_molecules_{truth_label}"].to_numpy(float)
        ok = true_n > 0
        rel = np.abs(est[ok] - true_n[ok]) / true_n[ok]
        corr_true = float(np.corrcoef(m.loc[hit, "diameter_nm"], true_n)[0, 1]) if ok.sum() > 2 else float("nan")
        corr_est = float(np.corrcoef(ref["equivalent_diameter_nm"], est)[0, 1]) if ok.sum() > 2 else float("nan")
        results[f"molecules_{truth_label}"] = {
            "median_abs_rel_error": float(np.median(rel)) if rel.size else float("nan"),
            "size_count_corr_true": corr_true, "size_count_corr_estimated": corr_est,
        }
        r = results[f"molecules_{truth_label}"]
        _say(f"    {truth_label}: molecules per particle median |relative error| {r['median_abs_rel_error']:.1%}; "
             f"size-count correlation true {corr_true:.2f}, estimated {corr_est:.2f}")
