"""correlate in napari: layer data from a scene, a reader plugin and a dock widget.

napari itself is optional (``pip install 'correlate[napari]'``): importing this package does not
import it. :func:`layer_data` builds napari "layer data tuples" from a Scene (images and labels with
their affine to world nm, localizations as points, per-particle tables as circles, every layer in
nm); :func:`show` opens them in a viewer. The plugin (``napari.yaml``) adds a reader (File > Open
or drag and drop a ``.ome.zarr`` scene) and the *correlate* dock widget (pick elements, run
``register`` and ``particles`` on the open scene, inspect a particle's row).
"""

from ._layers import default_elements, image_affine, layer_data, particle_layer, show

__all__ = ["layer_data", "show", "image_affine", "default_elements", "particle_layer"]
