#!/usr/bin/env bash
# One-shot, idempotent set-up on Debian/Ubuntu (Python 3.10-3.12):
#   system packages (GStreamer + RTSP server, ffmpeg for test clients, build deps of PyGObject),
#   a virtual environment in .venv, the CPU build of torch, and pf-stream with its extras.
# Re-running it is cheap: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  python3-venv python3-dev gcc pkg-config ffmpeg   # gcc: PyGObject is built from source
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0
  libgirepository1.0-dev libcairo2-dev
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Install again only when the package list changed.
stamp=.venv/.pf-stream-setup
want=$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # The CPU build of torch first (on these machines a local wheel); a bare `torch`
  # would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  # Pinned again here: open_clip pulls torchvision, whose newest release wants a newer torch,
  # and pip would replace the CPU build by that (a CUDA build) without the pin.
  .venv/bin/python -m pip install -q -e ".[dev,rtsp,train]" "torch==2.13.0"
  echo "$want" > "$stamp"
fi
