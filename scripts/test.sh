#!/usr/bin/env bash
# One command: set up correlate with its test dependencies and run the test suite.
# Usage: scripts/test.sh [PYTEST ARGS]   (slow tests: scripts/test.sh -m slow)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$here/scripts/setup.sh" test,formats)"
cd "$here"
exec "$venv/bin/python" -m pytest "$@"
