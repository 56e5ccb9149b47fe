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
cd "$here"
exec "$venv/bin/python" -m pytest "$@"
