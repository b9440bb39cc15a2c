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

# shellcheck source=lib/apt-install.sh
source "$(dirname "$0")/lib/apt-install.sh"
apt_install install-chromium "install Chromium (/usr/bin/chromium) another way" chromium

echo "install-chromium: installed $(/usr/bin/chromium --version)"
