#!/bin/sh
# Stand-in for the official rabbitmq image's entry point (the subset Postroom's Compose file uses):
# RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS (guest / guest) may log in from other containers,
# the management plugin listens on 15672, data stays in /var/lib/rabbitmq (a volume).
set -eu
cat >/etc/rabbitmq/rabbitmq.conf <<CONF
loopback_users = none
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
listeners.tcp.default = 5672
management.tcp.port = 15672
CONF
mkdir -p /var/lib/rabbitmq /var/log/rabbitmq
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
# Logs to the console, as the official image does; the Debian wrapper switches to the rabbitmq user.
export RABBITMQ_LOGS=-
exec /usr/sbin/rabbitmq-server
