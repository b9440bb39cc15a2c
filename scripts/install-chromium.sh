#!/usr/bin/env bash
# Installs Debian's chromium for the operator console's browser tests (playwright-core drives
# /usr/bin/chromium through executablePath; playwright's own browser downloads are never used).
# Idempotent: does nothing when /usr/bin/chromium exists; runs `apt-get update` only when the package is
# not known to apt yet. Other installs may hold the dpkg lock: apt waits up to 15 minutes for it.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "install-chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null || echo 'unknown version')); nothing to do"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-chromium: not root and no sudo: cannot install chromium" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: apt-get not found: install Chromium (/usr/bin/chromium) another way" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=900)

candidate="$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ { print $2 }')"
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
  echo "install-chromium: chromium unknown to apt: running apt-get update"
  $SUDO "${APT[@]}" update -q
else
  echo "install-chromium: chromium $candidate available; skipping apt-get update"
fi

echo "install-chromium: installing chromium"
if ! $SUDO env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -q --no-install-recommends chromium; then
  # Package lists older than the mirror name versions it no longer has: refresh and try once more.
  echo "install-chromium: install failed; refreshing package lists and trying again"
  $SUDO "${APT[@]}" update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y -q --no-install-recommends chromium
fi

echo "install-chromium: installed $(/usr/bin/chromium --version)"
