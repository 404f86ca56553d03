#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (browser downloads are not reachable). Install it when absent:
# CI runs as root on a clean Debian machine; anywhere else, say what to install and fail.
set -euo pipefail
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
PACKAGES="chromium fonts-liberation fonts-noto-core"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's Chromium for the browser tests: $PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $PACKAGES >/dev/null
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "error: no Chromium at $CHROMIUM. The browser tests need Debian's chromium package:" >&2
  echo "  sudo apt-get install $PACKAGES   (or set CHROMIUM_PATH to a Chromium binary)" >&2
  exit 1
fi
