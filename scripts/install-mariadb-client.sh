#!/usr/bin/env bash
# Installs Debian's mariadb-client (mariadb-dump and mariadb) for `npm run backup`, `npm run restore`
# and their tests. Idempotent: does nothing when both programs are on the PATH; runs `apt-get update`
# only when the package is not known to apt yet.
set -euo pipefail

if command -v mariadb-dump >/dev/null 2>&1 && command -v mariadb >/dev/null 2>&1; then
  echo "install-mariadb-client: already installed ($(mariadb-dump --version)); nothing to do"
  exit 0
fi

# shellcheck source=lib/apt-install.sh
source "$(dirname "$0")/lib/apt-install.sh"
apt_install install-mariadb-client "install mariadb-dump and mariadb another way" mariadb-client
echo "install-mariadb-client: installed $(mariadb-dump --version)"
