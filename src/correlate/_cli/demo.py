"""``correlate demo``: simulate a correlative sample with known truth and run the whole pipeline."""

from __future__ import annotations

import argparse

from ._json import add_json_flag, emit, json_command

NAME = "demo"
ORDER = 10
HELP = "simulate a correlative nanomedicine sample and run the pipeline on it, checked against the truth"
DESCRIPTION = (
    "Simulate a field of liposome-like nanoparticles with gold fiducials as seen by EM, two-colour "
    "SMLM (antibody and corona, with stage drift and a chromatic offset), SIM and AFM, each in its "
    "own frame and units; write them as a scene store OUT/sample.ome.zarr; correct the drift, align "
    "the colours, register SMLM, SIM and AFM onto EM, measure every particle and count its labels, "
    "write an overlay and an HTML report, and print each result beside the ground truth."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", nargs="?", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulation (default 0)")
    p.add_argument("--small", action="store_true", help="a small, fast sample (3 µm field) instead of the default 8 µm")
    p.add_argument("--no-drift", action="store_true", help="simulate without stage drift and chromatic offset")
    p.add_argument("--simulate-only", action="store_true", help="only write the simulated scene store")
    add_json_flag(p)


@json_command
def run(args) -> int:
    from ..demo import run_demo

    res = run_demo(args.out, seed=args.seed, small=args.small, drift=not args.no_drift, simulate_only=args.simulate_only)
    if args.json:
        emit({"output": str(args.out), "seed": args.seed, "small": args.small, "drift": not args.no_drift,
              "results": res})
    return 0
