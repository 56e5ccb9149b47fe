"""Fuzzing the readers with seeded mutants of the real sample files.

Every mutant is read in a guarded worker process (:mod:`_fuzz`): a read may fail only with a
CorrelateError whose message names the file; it may not hang past 10 s nor take more than 1 GB of
extra address space. The default run reads about 200 mutants per reader family; ``-m slow``
reads five times as many with other seeds.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import pytest

from _fuzz import GuardedReader, mutants, sample_files

FAMILIES = {"smlm": "SMLM tables", "em": "EM images", "lm": "light-microscopy images", "afm": "AFM height maps"}


def _family(path) -> str:
    if path.parent.name == "smlm":
        return "smlm-hdf5" if path.suffix in (".h5", ".hdf5", ".mat") else "smlm-text"
    return path.parent.name


def _run(formats_dir, tmp_path, per_family: int, seed: int):
    files = sample_files(formats_dir)
    by_family = defaultdict(list)
    for f in files:
        by_family[_family(f)].append(f)
    reader = GuardedReader()
    outcomes = []
    try:
        for fam, members in sorted(by_family.items()):
            n = math.ceil(per_family / len(members))
            for src in members:
                for p in mutants(src, n, seed, tmp_path / fam):
                    outcomes.append((fam, reader.read(p)))
    finally:
        reader.close()
    return outcomes


def _check(outcomes):
    counts = Counter((fam, o.result) for fam, o in outcomes)
    bad = [(fam, o) for fam, o in outcomes
           if o.result not in ("ok", "error") or (o.result == "error" and not o.info.get("names_file"))]
    summary = ", ".join(f"{fam}:{res}={n}" for (fam, res), n in sorted(counts.items()))
    detail = "\n".join(f"{fam} {o.result} {o.path} {o.info}" for fam, o in bad[:20])
    assert not bad, f"{len(bad)} bad outcomes of {len(outcomes)} ({summary}):\n{detail}"
    assert sum(o.result == "error" for _, o in outcomes) > 0.2 * len(outcomes)  # the mutants do bite
    return counts


def test_fuzz_readers(formats_dir, tmp_path):
    _check(_run(formats_dir, tmp_path, per_family=200, seed=1))


@pytest.mark.slow
def test_fuzz_readers_more(formats_dir, tmp_path):
    _check(_run(formats_dir, tmp_path, per_family=1000, seed=2))
