#!/usr/bin/env bash
# Installs Debian's mariadb-client (mariadb-dump and mariadb) for `npm run backup`, `npm run restore`
# and their tests. Idempotent: does nothing when both programs are on the PATH; runs `apt-get update`
# only when the package is not known to apt yet.
set -euo pipefail

if command -v mariadb-dump >/dev/null 2>&1 && command -v mariadb >/dev/null 2>&1; then
  echo "install-mariadb-client: already installed ($(mariadb-dump --version)); nothing to do"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-mariadb-client: not root and no sudo: cannot install mariadb-client" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-mariadb-client: apt-get not found: install mariadb-dump and mariadb another way" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=900 -y -q --no-install-recommends)

candidate="$(apt-cache policy mariadb-client 2>/dev/null | awk '/Candidate:/ { print $2 }')"
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
  echo "install-mariadb-client: mariadb-client unknown to apt: running apt-get update"
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -q
fi

echo "install-mariadb-client: installing mariadb-client"
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" mariadb-client; then
  echo "install-mariadb-client: install failed; refreshing package lists and trying again"
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install "${APT_OPTS[@]}" mariadb-client
fi
echo "install-mariadb-client: installed $(mariadb-dump --version)"
