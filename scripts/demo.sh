#!/usr/bin/env bash
# One command: set up correlate and run the demo (a simulated correlative sample with known truth).
# Usage: scripts/demo.sh [OUT_DIR]   (default: demo-output/)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$here/scripts/setup.sh")"
exec "$venv/bin/correlate" demo "${1:-demo-output}"
