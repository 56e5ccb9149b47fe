"""``correlate batch``: run a manifest of samples on dask.distributed, one store each."""

from __future__ import annotations

import argparse

from ._json import add_json_flag, emit, json_command

NAME = "batch"
ORDER = 90
HELP = "run many samples from a manifest (CSV/TSV) on a dask LocalCluster or a scheduler"
DESCRIPTION = (
    "Run each sample of MANIFEST (one row per sample: sample, file:<element>, import:<element>, "
    "register, register_args, structure, labels, particles_args) through import, register and "
    "particles into OUT/<sample>/scene.ome.zarr, as tasks on dask.distributed. Failures are "
    "reported and do not stop the others; completed samples are skipped on a rerun. Writes the "
    "combined per-particle table OUT/particles.parquet (+ .csv), OUT/summary.png and OUT/batch.json."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", metavar="MANIFEST", help="CSV or TSV table of samples")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    p.add_argument("--workers", type=int, default=None,
                   help="samples run at once on a LocalCluster (default: the cores, at most one per sample; "
                        "0: one after the other, no cluster)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing dask.distributed scheduler instead of a LocalCluster")
    p.add_argument("--threads-per-sample", type=int, metavar="N",
                   help="threads each sample's kernels may use (default: cores / workers)")
    p.add_argument("--rerun", action="store_true", help="run completed samples again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(p)


@json_command
def run(args) -> int:
    from ..batch import run_batch

    res = run_batch(args.manifest, args.out, workers=args.workers, scheduler=args.scheduler,
                    threads_per_sample=args.threads_per_sample, rerun=args.rerun,
                    progress=False if args.no_progress else None, verbose=not args.json)
    if args.json:
        emit({"samples": res.samples.to_dict("records"), "n_particles": len(res.table), "files": res.files})
    elif res.failed:
        for _, r in res.samples[res.samples["status"] == "failed"].iterrows():
            print(f"failed: {r['sample']}: {r['message']}; log {r['log']}")
    return 1 if res.failed else 0
