"""The *correlate* dock widget: pick a scene's elements, register, analyze particles, inspect one.

Every action runs on the open scene's store and shows what it found in the status line; a
:class:`~correlate.errors.CorrelateError` (no fiducials, an unplaced element...) is shown there
too, with the option that would help, and nothing is changed. The actions run in napari's thread:
the viewer waits while a registration or an analysis runs. This module is imported by napari
only (it imports napari).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, Select, TextEdit

from ..errors import CorrelateError

__all__ = ["CorrelateWidget"]

_MODELS = ["auto", "translation", "rigid", "similarity", "affine", "tps"]


class CorrelateWidget(Container):
    """Dock widget: open a scene, show elements, run ``register`` and ``particles``, and show the
    per-particle row of the particle selected in the particle layer.

    Parameters
    ----------
    viewer
        The napari viewer it acts on.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = viewer
        self.scene = None
        # choices are callables: napari calls reset_choices() when it docks the widget
        self._choices: dict[str, list[str]] = {}
        pick = lambda key: (lambda widget: self._choices.get(key, []))  # noqa: E731
        self.store = FileEdit(label="scene", mode="d")
        self.elements = Select(label="elements", choices=pick("elements"))
        self.moving = ComboBox(label="moving", choices=pick("placeable"))
        self.fixed = ComboBox(label="fixed", choices=pick("placeable"))
        self.model = ComboBox(label="model", choices=_MODELS, value="auto")
        self.structure = ComboBox(label="structure", choices=pick("images"))
        self.labels_select = Select(label="labels", choices=pick("localizations"))
        self.row = TextEdit(value="", label="particle")
        self.row.native.setReadOnly(True)
        self.status = Label(value="")
        buttons = {"open": "Open", "show": "Show selected", "register": "Register", "particles": "Analyze particles"}
        self.buttons = {k: PushButton(text=v) for k, v in buttons.items()}
        self.buttons["open"].changed.connect(lambda: self.open(self.store.value))
        self.buttons["show"].changed.connect(lambda: self.show(list(self.elements.value)))
        self.buttons["register"].changed.connect(lambda: self.register())
        self.buttons["particles"].changed.connect(lambda: self.particles())
        self.extend([self.store, self.buttons["open"], self.elements, self.buttons["show"], self.moving,
                     self.fixed, self.model, self.buttons["register"], self.structure, self.labels_select,
                     self.buttons["particles"], self.row, self.status])
        viewer.layers.events.inserted.connect(self._on_layer_added)
        for layer in viewer.layers:
            self._on_layer_added(type("E", (), {"value": layer})())

    # -- scene -----------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        self.status.value = text
        if error:
            from napari.utils.notifications import show_error

            show_error(text)

    def _on_layer_added(self, event) -> None:
        layer = event.value
        store = getattr(layer, "metadata", {}).get("correlate_store")
        if store and self.scene is None:
            self.open(store, show=False)
        if getattr(layer, "metadata", {}).get("table") and hasattr(layer, "events"):
            layer.events.highlight.connect(lambda e, lay=layer: self._on_select(lay))

    def open(self, path: str | Path, show: bool = True) -> None:
        """Open the scene at ``path`` and fill the element lists (and show its default layers)."""
        from ..scene import Scene
        from ._layers import default_elements

        try:
            self.scene = Scene.open(path)
        except CorrelateError as exc:
            self._say(f"error: {exc}", error=True)
            return
        self.store.value = str(path)
        names = self.scene.names()
        kinds = {n: self.scene.kind(n) for n in names}
        self._choices = {
            "elements": names,
            "placeable": [n for n in names if kinds[n] in ("image", "localizations")],
            "images": [n for n in names if kinds[n] == "image"],
            "localizations": [n for n in names if kinds[n] == "localizations"],
        }
        self.reset_choices()
        self.elements.value = default_elements(self.scene)
        self._say(f"{Path(path).name}: {len(names)} elements")
        if show:
            self.show(list(self.elements.value))

    def show(self, names: list[str]) -> None:
        """Replace this scene's layers in the viewer by those of ``names``."""
        from ._layers import layer_data

        if self.scene is None:
            return
        store = str(self.scene.path)
        for layer in [la for la in self.viewer.layers if la.metadata.get("correlate_store") == store]:
            self.viewer.layers.remove(layer)
        try:
            layers = layer_data(self.scene, names)
        except CorrelateError as exc:
            self._say(f"error: {exc}", error=True)
            return
        for data, kw, kind in layers:
            getattr(self.viewer, f"add_{kind}")(data, **kw)
        self.viewer.scale_bar.visible = True

    # -- actions ---------------------------------------------------------------------------
    def _writable(self):
        from ..scene import Scene

        return Scene.open(self.scene.path, mode="r+")

    def register(self) -> Any:
        """Register the chosen moving element onto the fixed one and redraw."""
        from ..registration import register_scene

        if self.scene is None or not self.moving.value or not self.fixed.value:
            self._say("open a scene and choose moving and fixed elements", error=True)
            return None
        try:
            reg, _ = register_scene(self._writable(), self.moving.value, self.fixed.value, model=self.model.value)
        except CorrelateError as exc:
            self._say(f"register: {exc}", error=True)
            return None
        self.open(self.scene.path, show=False)
        self.show(list(self.elements.value))
        self._say(f"{self.moving.value} -> {self.fixed.value}: {int(reg.landmarks.used.sum())} pairs, model "
                  f"{reg.model}, leave-one-out {reg.loo_rms:.2f} nm" + (", mirrored" if reg.mirrored else ""))
        return reg

    def particles(self) -> Any:
        """Run the per-particle analysis on the chosen structure and labels; add the particles."""
        from ..analysis import analyze_particles

        if self.scene is None or not self.structure.value:
            self._say("open a scene and choose a structure image", error=True)
            return None
        labels = list(self.labels_select.value)
        try:
            res = analyze_particles(self._writable(), self.structure.value, labels=labels)
        except CorrelateError as exc:
            self._say(f"particles: {exc}", error=True)
            return None
        self.open(self.scene.path, show=False)
        self.elements.value = list(dict.fromkeys([*self.elements.value, "particles"]))
        self.show(list(self.elements.value))
        self._say(f"{len(res.table)} particles in {self.structure.value}" + (f", labels {', '.join(labels)}" if labels else ""))
        return res

    def _on_select(self, layer) -> None:
        sel = sorted(getattr(layer, "selected_data", ()) or ())
        if sel:
            self.show_particle(layer, sel[0])

    def show_particle(self, layer, index: int) -> None:
        """Show row ``index`` of a particle layer's table in the widget."""
        row = layer.features.iloc[int(index)]
        self.row.value = "\n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items())
