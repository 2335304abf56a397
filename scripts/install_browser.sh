#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the browser test of the executive pack
# (tests/test_report_browser.py, `make test-slow`). Non-interactive; does nothing when a
# Chromium is already there. Needs root (or sudo) and Debian's package archive.
set -euo pipefail

CHROMIUM="${SOP_CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$CHROMIUM" ]]; then
  echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
  exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
  else
    echo "install_browser.sh: run as root (or install sudo) to apt-get install chromium" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-liberation: metric-compatible Arial/Helvetica so screenshots do not fall back to boxes
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "installed: $(/usr/bin/chromium --version)"
