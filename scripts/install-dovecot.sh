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

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-dovecot: not root and no sudo: cannot install dovecot-imapd" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-dovecot: apt-get not found: install Dovecot (IMAP server, /usr/sbin/dovecot) another way" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

candidate="$(apt-cache policy dovecot-imapd 2>/dev/null | awk '/Candidate:/ { print $2 }')"
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
  echo "install-dovecot: dovecot-imapd unknown to apt: running apt-get update"
  $SUDO apt-get update -q
else
  echo "install-dovecot: dovecot-imapd $candidate available; skipping apt-get update"
fi

echo "install-dovecot: installing dovecot-imapd"
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dovecot-imapd; then
  # Package lists older than the mirror name versions it no longer has: refresh and try once more.
  echo "install-dovecot: install failed; refreshing package lists and trying again"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dovecot-imapd
fi

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  echo "install-dovecot: stopping and disabling the system dovecot service (tests start their own)"
  $SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true
fi

echo "install-dovecot: installed $(/usr/sbin/dovecot --version)"
