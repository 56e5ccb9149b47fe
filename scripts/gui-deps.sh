#!/usr/bin/env bash
# Debian packages napari's headless tests need: a virtual X display (Xvfb) with Mesa's OpenGL and
# the X libraries Qt's xcb platform loads. Run as root; without them the napari tests skip.
set -euo pipefail
pkgs=(xvfb libgl1 libgl1-mesa-dri libegl1 libdbus-1-3 libfontconfig1 libxkbcommon-x11-0 libxcb-cursor0
      libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-shape0)
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${pkgs[@]}" >/dev/null 2>&1; then
  apt-get update -q >/dev/null 2>&1 || true
  apt-get install -y -q "${pkgs[@]}" >/dev/null
fi
