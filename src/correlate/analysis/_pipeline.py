"""The per-particle analysis as named steps: segment -> measure -> (per label: place -> assign ->
count -> locate -> qpaint -> aggregate -> summarize) -> tre -> colocalize -> table -> store.

A new step is a function and a line here, or a :func:`insert_step` call for one run:

>>> from correlate.analysis import PARTICLE_STEPS, ParticleStep, analyze_particles, insert_step
>>> def n_frames(state, lab):   # a per-label step adding a column
...     state.table[f"n_frames_{lab.name}"] = len(set(lab.locs["frame"]))
>>> steps = insert_step(PARTICLE_STEPS, ParticleStep("frames", n_frames, per_label=True), after="count")
>>> res = analyze_particles(scene, "em", ["antibody"], steps=steps)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from ._aggregate_steps import aggregate_step
from ._count_steps import count_step, locate_step, qpaint_step, summarize_label_step
from ._label_steps import assign_step, place_step
from ._particle_state import ParticleRun, ParticleStep
from ._structure_steps import measure_step, segment_step
from ._table_steps import colocalize_step, store_step, table_step, tre_step

__all__ = ["PARTICLE_STEPS", "insert_step", "run_steps"]

PARTICLE_STEPS: tuple[ParticleStep, ...] = (
    ParticleStep("segment", segment_step),
    ParticleStep("measure", measure_step),
    ParticleStep("place", place_step, per_label=True),
    ParticleStep("assign", assign_step, per_label=True),
    ParticleStep("count", count_step, per_label=True),
    ParticleStep("locate", locate_step, per_label=True),
    ParticleStep("qpaint", qpaint_step, per_label=True),
    ParticleStep("aggregate", aggregate_step, per_label=True),
    ParticleStep("summarize", summarize_label_step, per_label=True),
    ParticleStep("tre", tre_step),
    ParticleStep("colocalize", colocalize_step),
    ParticleStep("table", table_step),
    ParticleStep("store", store_step),
)
"""The steps of :func:`~correlate.analysis.analyze_particles`, in order."""


def _index(steps: Sequence[ParticleStep], name: str) -> int:
    from ..errors import CorrelateError

    names = [s.name for s in steps]
    if name not in names:
        raise CorrelateError(f"no step named {name!r} in the pipeline; steps: {names}", field="steps")
    return names.index(name)


def insert_step(steps: Sequence[ParticleStep], step: ParticleStep, *, after: str | None = None,
                before: str | None = None) -> tuple[ParticleStep, ...]:
    """A copy of ``steps`` with ``step`` inserted after (or before) the step of that name.

    Returns
    -------
    tuple of ParticleStep
    """
    from ..errors import CorrelateError

    if (after is None) == (before is None):
        raise CorrelateError("insert_step needs exactly one of after= or before=", field="steps")
    if step.name in [s.name for s in steps]:
        raise CorrelateError(f"a step named {step.name!r} is already in the pipeline", field="steps")
    i = _index(steps, after) + 1 if after is not None else _index(steps, before)
    return (*steps[:i], step, *steps[i:])


def run_steps(state: ParticleRun, steps: Sequence[ParticleStep] = PARTICLE_STEPS) -> ParticleRun:
    """Run ``steps`` on ``state`` in order; each run of consecutive per-label steps goes label by
    label (all of them for the first label, then the next).

    Returns
    -------
    ParticleRun
        ``state``, filled in.
    """
    steps = list(steps)
    i = 0
    while i < len(steps):
        if not steps[i].per_label:
            steps[i].run(state)
            i += 1
            continue
        j = i
        while j < len(steps) and steps[j].per_label:
            j += 1
        for name in state.labels:
            lab = state.label_run(name)
            for step in steps[i:j]:
                step.run(state, lab)
        i = j
    return state
