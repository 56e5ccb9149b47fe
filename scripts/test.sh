#!/usr/bin/env bash
# One command: set up correlate with its test dependencies and run the test suite.
# Usage: scripts/test.sh [PYTEST ARGS]   (slow tests: scripts/test.sh -m slow)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$here/scripts/setup.sh" test,formats,napari,spatialdata)"
# napari's tests draw on a virtual X display: install Xvfb where this runs as root on Debian.
if ! command -v Xvfb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "correlate: installing Xvfb and the X libraries for napari's headless tests" >&2
  "$here/scripts/gui-deps.sh" || echo "correlate: could not install Xvfb; the napari tests will skip" >&2
fi
# Picasso's own reader (picasso.io.load_locs) checks the Picasso export in tests/test_export_smlm.py.
# picassosr pins a GUI stack (PyQt6, streamlit, ...) that picasso.io never imports: install it
# without dependencies; what picasso.io imports (numpy, pandas, h5py, pyyaml, tifffile, nd2, numba,
# matplotlib, scipy, tqdm) comes with correlate and its extras, playsound3 with the test extra.
PICASSO_VERSION="${PICASSO_VERSION:-0.11.3}"
if ! "$venv/bin/python" -c 'import picasso.io' >/dev/null 2>&1; then
  echo "correlate: installing picassosr==$PICASSO_VERSION (--no-deps) for the Picasso export tests" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "picassosr==$PICASSO_VERSION" >&2 \
    || echo "correlate: could not install picassosr; the Picasso export tests will skip" >&2
fi
cd "$here"
exec "$venv/bin/python" -m pytest "$@"
