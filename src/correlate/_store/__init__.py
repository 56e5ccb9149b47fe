"""The scene store's collaborators, one job each.

``paths`` (names, containment), ``lock`` (one writer at a time), ``rootdoc`` (the root
zarr.json), ``create`` (a new empty store, swapped into place), ``catalogue`` (elements, kinds,
data paths, validation), ``graph`` (element -> world transforms), ``writer`` (transactions:
staging, the one commit point, cleanup), ``parts`` (writing each kind of part inside a
transaction), ``records`` (registration records, placement declarations, history steps),
``summary`` (the text of ``Scene.info``). :class:`correlate.scene.Scene` is the public facade
over them.
"""
