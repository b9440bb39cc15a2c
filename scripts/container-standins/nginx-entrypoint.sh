#!/bin/sh
# Stand-in for the official NGINX image's entry point (the subset Postroom's Compose file uses):
# with NGINX_ENTRYPOINT_LOCAL_RESOLVERS set, NGINX_LOCAL_RESOLVERS is the name servers of
# /etc/resolv.conf; the executable /docker-entrypoint.d/*.envsh files are sourced; each
# /etc/nginx/templates/X.template becomes /etc/nginx/conf.d/X with the environment's ${VARIABLES} filled
# in (nginx's own lower-case $variables are left alone).
set -eu
if [ -n "${NGINX_ENTRYPOINT_LOCAL_RESOLVERS:-}" ]; then
  NGINX_LOCAL_RESOLVERS="$(awk '/^nameserver/ { if ($2 ~ ":") printf "[%s] ", $2; else printf "%s ", $2 }' /etc/resolv.conf)"
  export NGINX_LOCAL_RESOLVERS
fi
# Then, as the official image does, every executable /docker-entrypoint.d/*.envsh is sourced in order
# (Compose mounts infra/nginx/first-resolver.envsh there).
for f in /docker-entrypoint.d/*.envsh; do
  if [ -f "$f" ] && [ -x "$f" ]; then . "$f"; fi
done
if [ -d /etc/nginx/templates ]; then
  vars="$(env | sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')"
  for t in /etc/nginx/templates/*.template; do
    [ -f "$t" ] || continue
    out="/etc/nginx/conf.d/$(basename "$t" .template)"
    envsubst "$vars" <"$t" >"$out"
  done
fi
exec nginx -g 'daemon off;'
