#!/bin/sh
# Stand-in for the official mysql image's entry point (the subset Postroom's Compose file uses):
# a new data directory gets MYSQL_ROOT_PASSWORD for root from any host (empty when
# MYSQL_ALLOW_EMPTY_PASSWORD is set) and the database MYSQL_DATABASE; an existing one is kept as is.
set -eu
datadir=/var/lib/mysql
mkdir -p /run/mysqld "$datadir"
chown mysql:mysql /run/mysqld "$datadir"
set -- mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --skip-name-resolve \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci
if [ ! -d "$datadir/mysql" ]; then
  password="${MYSQL_ROOT_PASSWORD:-}"
  if [ -z "$password" ] && [ -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ]; then
    echo "mysql stand-in: set MYSQL_ROOT_PASSWORD or MYSQL_ALLOW_EMPTY_PASSWORD" >&2
    exit 1
  fi
  echo "mysql stand-in: initialising $datadir"
  # Password authentication for root, not unix_socket: clients in other containers log in over TCP.
  mariadb-install-db --user=mysql --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  quoted="$(printf '%s' "$password" | sed "s/'/''/g")"
  init=/run/mysqld/init.sql
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$quoted';"
    echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$quoted';"
    echo "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "${MYSQL_DATABASE:-}" ]; then echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"; fi
    echo "FLUSH PRIVILEGES;"
  } >"$init"
  chown mysql:mysql "$init"
  set -- "$@" --init-file="$init"
fi
exec "$@"
