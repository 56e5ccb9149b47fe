#!/usr/bin/env bash
# Create the virtual environment of the peers the benchmarks compare against (Picasso), apart
# from correlate's own: the peers are never a dependency of correlate, only measured beside it.
#
#   benchmarks/setup_peers.sh [DEST]          # default DEST: $CORRELATE_PEERS or ./peers
#   python benchmarks/bench_render.py --peers DEST/.venv/bin/python
#
# Environment: PYTHON (interpreter for the venv, default python3.12), PICASSO_VERSION (default
# 0.11.3, the version the published figures were measured with). The log goes to DEST/install.log.
set -euo pipefail

DEST="${1:-${CORRELATE_PEERS:-peers}}"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    # python3.12 on PATH, else a pyenv-installed 3.12 (pyenv's shim fails outside a pinned folder)
    if python3.12 -c '' 2>/dev/null; then
        PY=python3.12
    else
        PY=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1)
    fi
fi
[ -n "$PY" ] || { echo "no Python 3.12 found; set PYTHON=/path/to/python3.12" >&2; exit 1; }
PICASSO_VERSION="${PICASSO_VERSION:-0.11.3}"

mkdir -p "$DEST"
LOG="$DEST/install.log"
if [ ! -x "$DEST/.venv/bin/python" ]; then
    "$PY" -m venv "$DEST/.venv"
fi
{
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $("$DEST/.venv/bin/python" --version)"
    "$DEST/.venv/bin/python" -m pip install -q "picassosr==${PICASSO_VERSION}"
} >>"$LOG" 2>&1 || { echo "pip install failed; see $LOG" >&2; exit 1; }

"$DEST/.venv/bin/python" - <<'PY'
import importlib.metadata as md
import numba, numpy
import picasso.render  # noqa: F401  (the functions bench_render.py times)
print(f"peers venv ready: picassosr {md.version('picassosr')}, numba {numba.__version__}, numpy {numpy.__version__}")
PY
echo "python: $DEST/.venv/bin/python"
