#!/usr/bin/env bash
# Set up correlate's virtual environment in .venv (or $CORRELATE_VENV) with Python >= 3.12.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test,gpl
# Finds a suitable interpreter on PATH or through pyenv; prints what to install when none exists.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${CORRELATE_VENV:-$here/.venv}"
extras="${1:-}"

ok_version() {  # ok_version PYTHON -> exit 0 if it runs and is >= 3.12
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local c v
  if [ -n "${CORRELATE_PYTHON:-}" ]; then
    ok_version "$CORRELATE_PYTHON" && { echo "$CORRELATE_PYTHON"; return 0; }
    echo "CORRELATE_PYTHON=$CORRELATE_PYTHON is not Python >= 3.12" >&2; return 1
  fi
  for c in python3.14 python3.13 python3.12 python3 python; do
    if command -v "$c" >/dev/null 2>&1 && ok_version "$c"; then command -v "$c"; return 0; fi
  done
  # pyenv: installed but not selected versions (plain python3.12 says "command not found" then).
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  if command -v pyenv >/dev/null 2>&1; then root="$(pyenv root 2>/dev/null || echo "$root")"; fi
  if [ -d "$root/versions" ]; then
    for v in $(ls -1 "$root/versions" | grep -E '^3\.(1[2-9]|[2-9][0-9])(\.[0-9]+)?$' | sort -t. -k1,1n -k2,2n -k3,3n -r); do
      c="$root/versions/$v/bin/python3"
      if [ -x "$c" ] && ok_version "$c"; then echo "$c"; return 0; fi
    done
  fi
  # uv-managed or other common locations
  for c in /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9] "$HOME"/.local/share/uv/python/cpython-3.1[2-9]*/bin/python3; do
    if [ -x "$c" ] && ok_version "$c"; then echo "$c"; return 0; fi
  done
  return 1
}

if [ -x "$venv/bin/python" ] && ok_version "$venv/bin/python"; then
  py="$venv/bin/python"
else
  if ! base="$(find_python)"; then
    cat >&2 <<'MSG'
correlate needs Python 3.12 or newer (the OME-Zarr 0.6 stack requires it), and none was found
on PATH or in pyenv. Install one, for example:
  - pyenv:   pyenv install 3.12      (then re-run this command; it finds pyenv versions itself)
  - Debian:  apt-get install python3.12 python3.12-venv   (where your release packages it)
  - uv:      uv python install 3.12
or point CORRELATE_PYTHON at an interpreter: CORRELATE_PYTHON=/path/to/python3.12 scripts/setup.sh
MSG
    exit 1
  fi
  echo "correlate: using $base ($("$base" -c 'import sys; print(sys.version.split()[0])'))" >&2
  rm -rf "$venv"
  "$base" -m venv "$venv"
  py="$venv/bin/python"
fi

spec="$here"
[ -n "$extras" ] && spec="$here[$extras]"
stamp="$venv/.correlate-installed"
want="$(cat "$here/pyproject.toml" | sha256sum | cut -c1-16) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "correlate: installing into $venv (extras: ${extras:-none})" >&2
  "$py" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$py" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2
  echo "$want" > "$stamp"
fi
echo "$venv"
