#!/usr/bin/env bash
# Checks the test suite's container path (test/global-setup.ts) on a machine that has local services:
# TEST_SERVICES=containers makes the setup start RabbitMQ and MySQL with testcontainers instead, and
# every test file's Dovecot in a container of its own (test/dovecot-container.ts), on the machine's
# Docker or, without one, podman's Docker-compatible socket. Images: the usual ones when they can be
# pulled, else the local stand-ins (scripts/container-standins.sh). Runs the given test files
# (default: a few that use RabbitMQ, MySQL, Dovecot and a whole process). Not part of CI: slow, needs
# an engine.
# With --tools, the outside programs CI installs (Chromium, LibreOffice, poppler, the MariaDB client,
# promtool, and the TLS tests' MariaDB and RabbitMQ servers and openssl) run from the tools image too,
# installed here or not (TEST_TOOLS=container,
# test/tools-container.ts; built from the Debian stand-in where no registry is reachable), and the
# default test files are the ones that use them.
#   scripts/test-with-containers.sh [--tools] [test files...]
set -euo pipefail
cd "$(dirname "$0")/.."

tools=""
if [ "${1:-}" = --tools ]; then
  tools=1
  shift
fi

service_pid=""
if ! { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
  command -v podman >/dev/null 2>&1 || { echo "test-with-containers: no Docker and no podman" >&2; exit 1; }
  # A socket of its own, so that no other podman service user (the smoke run) stops it underneath.
  sock="${TMPDIR:-/tmp}/postroom-tests-podman-$$.sock"
  export DOCKER_HOST="unix://$sock"
  if ! curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
    podman system service --time=0 "unix://$sock" >/dev/null 2>&1 &
    service_pid=$!
    trap 'kill "$service_pid" 2>/dev/null || true; rm -f "$sock"' EXIT
    for _ in $(seq 1 50); do curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  # podman's Docker API asks for Docker's default limits, which runc cannot set here: give the limits
  # of containers.conf (scripts/install-podman.sh), both (a limit left out falls back to the default).
  export TEST_CONTAINER_ULIMITS="nofile=1024:4096,nproc=4096:8192"
  # No registry reachable: the stand-ins (built once, then reused).
  if ! timeout 60 podman pull -q rabbitmq:3.13-management >/dev/null 2>&1; then
    eval "$(scripts/container-standins.sh)"
    export TEST_RABBITMQ_IMAGE="$RABBITMQ_IMAGE" TEST_MYSQL_IMAGE="$MYSQL_IMAGE" TEST_DOVECOT_IMAGE="$DOVECOT_IMAGE"
    export TEST_TOOLS_BASE_IMAGE="${TEST_TOOLS_BASE_IMAGE:-$DEBIAN_IMAGE}"
  fi
fi
if [ $# -eq 0 ] && [ -n "$tools" ]; then
  set -- consumers/conversion infra/documents infra/backup infra/prometheus \
    infra/http/console/console.browser.int.test.ts infra/http/status-api \
    infra/broker/broker-tls.int.test.ts infra/db/database-tls.int.test.ts infra/grafana
elif [ $# -eq 0 ]; then
  set -- infra/broker infra/db producers/inbox-folder producers/imap-poller
fi
npm run -s build
unset AMQP_URL MYSQL_URL
if [ -n "$tools" ]; then export TEST_TOOLS=container; fi
TEST_SERVICES=containers npx vitest run "$@"
