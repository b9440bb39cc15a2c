#!/usr/bin/env bash
# Installs a container engine for the container smoke run (scripts/container-smoke.sh) and for the
# testcontainers path of the test suite on a Debian/Ubuntu machine without Docker: Debian's podman
# with runc (crun fails on kernels with hybrid cgroups), mmdebstrap (builds stand-in base images when
# no image registry is reachable), docker-compose 1.29 (talks to podman's Docker-compatible socket) and
# iptables (netavark, podman's network stack, writes its bridge rules with it; without it every container
# with a network fails with "netavark: No such file or directory (os error 2)").
# Writes /etc/containers/containers.conf with runc and ulimits no higher than the host's (podman's
# default ulimits are refused inside some sandboxes), keeping an existing file that already names runc.
# Idempotent: does nothing when everything is installed and configured. Not called by .ci/run: the
# smoke run is slow and the hosted CI has Docker.
set -euo pipefail

packages=(podman runc netavark aardvark-dns iptables mmdebstrap docker-compose uidmap slirp4netns fuse-overlayfs)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-podman: not root and no sudo: cannot install ${missing[*]:-anything}" >&2
    exit 1
  fi
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-podman: apt-get not found: install podman, runc, mmdebstrap and docker-compose another way" >&2
    exit 1
  fi
  echo "install-podman: installing ${missing[*]}"
  apt_install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
      --no-install-recommends "${missing[@]}"
  }
  if ! apt_install; then
    echo "install-podman: install failed; refreshing package lists and trying again"
    $SUDO apt-get -o DPkg::Lock::Timeout=900 update -q
    apt_install
  fi
else
  echo "install-podman: podman, runc, mmdebstrap and docker-compose already installed"
fi

conf=/etc/containers/containers.conf
if [ -f "$conf" ] && grep -q '^runtime *= *"runc"' "$conf"; then
  echo "install-podman: $conf already selects runc; leaving it alone"
else
  nofile_soft="$(ulimit -Sn)"
  nofile_hard="$(ulimit -Hn)"
  nproc_soft="$(ulimit -Su)"
  nproc_hard="$(ulimit -Hu)"
  cap() { # the smaller of a wanted limit and the host's (which may be "unlimited")
    if [ "$2" = unlimited ] || [ "$1" -le "$2" ]; then echo "$1"; else echo "$2"; fi
  }
  nofile="$(cap 1024 "$nofile_soft"):$(cap 4096 "$nofile_hard")"
  nproc="$(cap 4096 "$nproc_soft"):$(cap 8192 "$nproc_hard")"
  echo "install-podman: writing $conf (runtime runc, nofile=$nofile, nproc=$nproc)"
  $SUDO mkdir -p /etc/containers
  $SUDO tee "$conf" >/dev/null <<CONF
# Written by scripts/install-podman.sh. crun fails on kernels with hybrid cgroups: use runc.
# Ulimits no higher than the host allows, or containers refuse to start.
[containers]
default_ulimits = ["nofile=$nofile", "nproc=$nproc"]

[engine]
runtime = "runc"
CONF
fi

echo "install-podman: $(podman --version), $(runc --version | head -1), $(docker-compose version --short 2>/dev/null || echo 'docker-compose ?')"
