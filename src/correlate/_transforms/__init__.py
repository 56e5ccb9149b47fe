"""The implementation of :mod:`correlate.transforms`; import the names from there.

- :mod:`.axes`: the one helper between table order (x, y, z) and NGFF order (z, y, x).
- :mod:`.linear`: the :class:`~correlate.transforms.Transform` base,
  :func:`~correlate.transforms.from_ngff` (which builds a transform from the readers each
  transform type registers for its NGFF ``type``) and the linear transforms (identity,
  translation, scale, affine, sequence) with :func:`~correlate.transforms.compose`.
- :mod:`.nonlinear`: the thin-plate spline, the displacement field and their Newton inverse.
"""
