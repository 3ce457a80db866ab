#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed for the browser tests
# (hub/browsertest). Idempotent: does nothing when /usr/bin/chromium exists.
# Installs the Debian package "chromium" with apt-get otherwise (needs root,
# as on CI). Prints what it did.
set -euo pipefail

bin=/usr/bin/chromium
if [ -x "$bin" ]; then
  echo "ensure-chromium: $bin present ($("$bin" --version 2>/dev/null || echo 'version unknown')); nothing to do"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: $bin is missing and apt-get is not available; install Chromium by hand" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "ensure-chromium: $bin is missing; run as root to install the Debian package 'chromium'" >&2
    exit 1
  fi
fi

echo "ensure-chromium: $bin is missing; installing the Debian package 'chromium'"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
if [ ! -x "$bin" ]; then
  echo "ensure-chromium: apt-get finished but $bin is still missing" >&2
  exit 1
fi
echo "ensure-chromium: installed $("$bin" --version 2>/dev/null || echo chromium)"
