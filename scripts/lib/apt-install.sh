# shellcheck shell=bash
# Shared by the scripts/install-*.sh scripts: installs Debian packages the way every one of them needs.
# Source it, then call: apt_install <script name> <what to install instead, without apt> <package>...
# - root, or sudo when not root; a clear message and exit 1 when neither, or when apt-get is missing;
# - `apt-get update` only when a package is unknown to apt (fresh machines), and once more when the
#   install fails (package lists older than the mirror name versions it no longer has);
# - waits up to 15 minutes for the dpkg lock, since other installs may hold it;
# - no recommended packages, no questions.
apt_install() {
  local name="$1" instead="$2"
  shift 2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "$name: not root and no sudo: cannot install $*" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$name: apt-get not found: $instead" >&2
    exit 1
  fi
  local apt=(apt-get -o DPkg::Lock::Timeout=900)
  local install=(env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q --no-install-recommends)
  local p candidate unknown=0
  for p in "$@"; do
    candidate="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')"
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then unknown=1; fi
  done
  if [ "$unknown" -eq 1 ]; then
    echo "$name: some of $* unknown to apt: running apt-get update"
    $sudo "${apt[@]}" update -q
  fi
  echo "$name: installing $*"
  if ! $sudo "${install[@]}" "$@"; then
    echo "$name: install failed; refreshing package lists and trying again"
    $sudo "${apt[@]}" update -q
    $sudo "${install[@]}" "$@"
  fi
}
