#!/usr/bin/env bash
# Installs Debian's dovecot-imapd for the IMAP integration tests (test/dovecot.ts starts throwaway
# servers from it with their own configuration). Idempotent: does nothing when /usr/sbin/dovecot exists;
# runs `apt-get update` only when the package is not known to apt yet. The system service the package
# may start is stopped and disabled, so no public IMAP port stays open on the CI machine.
set -euo pipefail

if [ -x /usr/sbin/dovecot ]; then
  echo "install-dovecot: already installed ($(/usr/sbin/dovecot --version 2>/dev/null || echo 'unknown version')); nothing to do"
  exit 0
fi

# shellcheck source=lib/apt-install.sh
source "$(dirname "$0")/lib/apt-install.sh"
apt_install install-dovecot "install Dovecot (IMAP server, /usr/sbin/dovecot) another way" dovecot-imapd

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  echo "install-dovecot: stopping and disabling the system dovecot service (tests start their own)"
  if [ "$(id -u)" -eq 0 ]; then systemctl disable --now dovecot; else sudo systemctl disable --now dovecot; fi >/dev/null 2>&1 || true
fi

echo "install-dovecot: installed $(/usr/sbin/dovecot --version)"
