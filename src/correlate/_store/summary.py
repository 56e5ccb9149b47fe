"""Reports on a scene: the text of :meth:`Scene.info` and the NGFF check of :meth:`Scene.validate`."""

from __future__ import annotations

from ..errors import StoreError
from .catalogue import field_paths

__all__ = ["scene_summary", "validate_ngff"]


def scene_summary(scene) -> str:
    """A human-readable summary of a Scene: elements, coordinate systems, transforms, extensions."""
    from ..io._store_transforms import short_description

    meta = scene._meta
    lines = [f"correlate scene {scene.path}  (OME-Zarr 0.6, correlate schema {meta.get('schema_version')})"]
    lines.append("")
    lines.append("elements:")
    if not meta["elements"]:
        lines.append("  (none)")
    for name in sorted(meta["elements"]):
        e = meta["elements"][name]
        k = e["kind"]
        if k == "image":
            dims = e.get("dims", [])
            shape = "x".join(str(n) for n in e.get("shape", []))
            px = e.get("pixel_size_nm", {})
            pxs = ", ".join(f"{d} {v:.4g}" for d, v in px.items())
            extra = f", values in {e['value_unit']}" if e.get("value_unit") else ""
            chn = e.get("channel_names") or []
            ch = f", {len(chn)} channels {chn if len(chn) <= 6 else chn[:3] + ['...'] + chn[-2:]}" if chn else ""
            lines.append(
                f"  {name:<16} image  {e.get('modality', '?'):<5} {'(' + ','.join(dims) + ')'} {shape} {e.get('dtype', '')}, "
                f"pixel {pxs} nm, {e.get('n_levels', 1)} level{'s' if e.get('n_levels', 1) != 1 else ''}{ch}{extra}"
            )
            for lab in e.get("labels", []):
                lines.append(f"  {name + '/labels/' + lab:<16} labels")
        elif k == "localizations":
            lines.append(
                f"  {name:<16} localizations {e.get('modality', 'smlm')}, {e.get('n_rows', 0)} rows, "
                f"{e.get('ndim', 2)}-D, system {e['coordinate_system']['name']}"
                + (f", from {e['source_format']}" if e.get("source_format") else "")
            )
        else:
            lines.append(
                f"  {name:<16} table, {e.get('n_rows', 0)} rows"
                + (f", describes {e['label_image']}" if e.get("label_image") else "")
            )
    lines.append("")
    lines.append("coordinate systems:")
    for cs in scene._root["ome"]["scene"]["coordinateSystems"]:
        axes = ",".join(a["name"] for a in cs["axes"])
        lines.append(f"  {cs['name']} ({axes}; nm)")
    for name in sorted(meta["elements"]):
        e = meta["elements"][name]
        if "path" in e.get("coordinate_system", {}):
            lines.append(f"  {name}/{e['coordinate_system']['name']} (image)")
    lines.append("")
    lines.append("transforms (element -> world):")
    if not meta["transforms"]:
        lines.append("  (none)")
    for name in sorted(meta["transforms"]):
        t = meta["transforms"][name]
        if t.get("exact") is not None:
            lines.append(f"  {name:<16} non-linear: {short_description(t['exact'])}")
            lines.append(f"  {'':<16} (ome.scene holds an approximation: {short_description(t['linear'])})")
        else:
            lines.append(f"  {name:<16} {short_description(t['linear'])}")
    lines.append("")
    lines.append("correlate/:")
    pairs = scene.landmark_pairs()
    lines.append(f"  landmarks: {', '.join(f'{a} -> {b}' for a, b in pairs) if pairs else '(none)'}")
    cat = scene._landmarks()
    for a, b in pairs:
        m = cat[f"{a}__{b}"]
        lines.append(f"    {a} -> {b}: {m.get('n_pairs', m.get('n_rows'))} pairs")
    regs = scene.registrations()
    lines.append(f"  registrations: {len(regs)}")
    for r in regs[-5:]:
        # register_scene writes moving/fixed/fre_rms_nm/loo_rms_nm/predicted_tre_field;
        # hand-made records may use source/target/fre_nm/tre_nm
        src, dst = r.get("moving", r.get("source")), r.get("fixed", r.get("target"))
        figures = {
            "model": r.get("model"),
            "FRE": r.get("fre_rms_nm", r.get("fre_nm")),
            "LOO": r.get("loo_rms_nm"),
            "TRE": (r.get("predicted_tre_field") or {}).get("tre_rms_median_nm", r.get("tre_nm")),
        }
        desc = ", ".join(
            f"{k} {v:.3g} nm" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items() if v is not None
        )
        pair = f"{src} -> {dst}: " if src is not None and dst is not None else ""
        lines.append(f"    {r.get('created', '')} {pair}{desc}")
    tables = scene.names("table")
    lines.append(f"  tables: {', '.join(tables) if tables else '(none)'}")
    hist = scene._history_doc()
    lines.append(f"  history: {sum(len(v) for v in hist.values())} steps")
    for n in sorted(hist):
        steps = [str(s.get("step", s.get("name", "?"))) for s in hist[n]]
        lines.append(f"    {n}: {' -> '.join(steps)}")
    return "\n".join(lines)


def validate_ngff(scene) -> None:
    """Check a Scene's store against the NGFF 0.6 models of ``ome-zarr-models`` (the scene, every
    image with its labels, every displacement field); StoreError naming the part otherwise."""
    import zarr
    from ome_zarr_models.v06.image import Image

    from ..io._store_remote import zarr_store
    from ome_zarr_models.v06.scene import Scene as NgffScene

    parts = [("scene", "", NgffScene)]
    parts += [(f"image {n!r}", scene._entry(n)["path"], Image) for n in scene.names("image")]
    for n, t in sorted(scene._meta["transforms"].items()):
        parts += [(f"displacement field {rel!r}", rel, Image) for rel in field_paths(t)]
    for what, rel, model in parts:
        p = scene._abs(rel, what) if rel else scene.path
        try:
            model.from_zarr(zarr.open_group(zarr_store(p), mode="r"))
        except Exception as exc:  # pydantic ValidationError, missing arrays...
            raise StoreError(f"{what} does not validate as NGFF 0.6: {exc}", path=p) from exc
