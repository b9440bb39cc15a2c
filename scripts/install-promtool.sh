#!/usr/bin/env bash
# Installs promtool, Prometheus's rule checker, for `npm run check:alerts` and the alert-rule tests.
# Debian ships it only inside the `prometheus` package, whose server we do not want running: the package
# is downloaded (not installed) and promtool alone is unpacked to /opt/promtool, linked as
# /usr/local/bin/promtool. Idempotent: does nothing when promtool is already on the PATH.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "install-promtool: already installed ($(promtool --version 2>&1 | head -1)); nothing to do"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-promtool: apt-get not found: install promtool (Prometheus 2.x) another way" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
candidate="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }')"
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
  echo "install-promtool: prometheus unknown to apt: running apt-get update"
  $SUDO apt-get update -q
fi
echo "install-promtool: downloading Debian's prometheus package (promtool only is kept)"
if ! apt-get download prometheus >/dev/null; then
  echo "install-promtool: download failed; refreshing package lists and trying again"
  $SUDO apt-get update -q
  apt-get download prometheus >/dev/null
fi
dpkg-deb -x prometheus_*.deb root
$SUDO mkdir -p /opt/promtool
$SUDO install -m 0755 root/usr/bin/promtool /opt/promtool/promtool
$SUDO ln -sf /opt/promtool/promtool /usr/local/bin/promtool
echo "install-promtool: installed $(promtool --version 2>&1 | head -1)"
