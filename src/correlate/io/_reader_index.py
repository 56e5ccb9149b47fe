"""Which built-in reader module holds which formats, so that a read imports only what it needs.

``MODULES`` maps each module of :mod:`correlate.io.readers` to the names of its readers and the
suffixes they claim (lower case; ``".###"`` stands for the numbered suffixes ``.000`` to ``.999``).
A file whose suffix the index knows imports only the modules claiming it; a module missing from the
index is always imported, so a new reader works before it is listed here (a test checks the index
against the modules' own ``READERS``).
"""

from __future__ import annotations

__all__ = ["MODULES", "NUMBERED", "modules_claiming", "modules_named", "suffix_matches"]

#: The token standing for the numbered suffixes ``.000`` ... ``.999``.
NUMBERED = ".###"

MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "afm_gwy": (("gwy",), (".gwy",)),
    "afm_ibw": (("ibw",), (".ibw",)),
    "afm_jpk": (("jpk",), (".jpk", ".jpk-qi-image")),
    "afm_nanoscope": (("nanoscope",), (".spm", NUMBERED)),
    "afm_topostats": (("topostats",), (".topostats",)),
    "afm_wsxm": (("wsxm",), (".ch1", ".ch2", ".ch3", ".ch4", ".stp", ".top")),
    "em_mrc": (("mrc",), (".ali", ".ccp4", ".map", ".mrc", ".mrcs", ".rec", ".st")),
    "em_rsciio": (("dm", "tia", "emd"), (".dm3", ".dm4", ".emd", ".emi", ".ser")),
    "em_sem_tiff": (("sem_tiff",), (".tif", ".tiff")),
    "lm_czi": (("czi",), (".czi",)),
    "lm_lif": (("lif",), (".lif",)),
    "lm_nd2": (("nd2",), (".nd2",)),
    "lm_obf": (("obf",), (".msr", ".obf")),
    "lm_tiff": (
        ("ome_tiff", "tiff"),
        (".btf", ".ome.btf", ".ome.tf2", ".ome.tf8", ".ome.tif", ".ome.tiff", ".tf8", ".tif", ".tiff"),
    ),
    "smlm_decode": (("decode",), (".h5", ".hdf5")),
    "smlm_elyra": (("elyra",), (".csv", ".txt")),
    "smlm_minflux": (("minflux",), (".json", ".npy")),
    "smlm_nanoimager": (("nanoimager",), (".csv",)),
    "smlm_picasso": (("picasso",), (".h5", ".hdf5")),
    "smlm_rapidstorm": (("rapidstorm",), (".txt",)),
    "smlm_shareloc": (("smlm",), (".smlm",)),
    "smlm_smap": (("smap",), (".mat",)),
    "smlm_table": (("table",), (".csv", ".parquet", ".tsv", ".txt")),
    "smlm_thunderstorm": (("thunderstorm",), (".csv",)),
}


def suffix_matches(filename: str, suffix: str) -> bool:
    """True if the lower-case ``filename`` ends with ``suffix`` (``NUMBERED``: ``.000``-``.999``)."""
    if suffix == NUMBERED:
        return len(filename) > 4 and filename[-4] == "." and filename[-3:].isdigit()
    return filename.endswith(suffix)


def modules_claiming(filename: str) -> list[str]:
    """Indexed modules with a reader claiming ``filename``'s suffix."""
    name = filename.lower()
    return [m for m, (_, sufs) in MODULES.items() if any(suffix_matches(name, s) for s in sufs)]


def modules_named(format: str) -> list[str]:
    """Indexed modules holding a reader called ``format``."""
    return [m for m, (names, _) in MODULES.items() if format in names]
