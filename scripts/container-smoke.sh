#!/usr/bin/env bash
# Proves the deployment on real containers (npm run smoke:containers): builds the Postroom image,
# starts the Compose stack with the `demo` profile, waits until the demo mail has gone through the
# pipeline, and checks it the way a user would:
#   1. through NGINX and the status API: emails `done`, an accepted attachment filed (`uploaded`);
#   2. the filed file is in the `drive-files` volume;
#   3. `--scale analysis=3`: three analysis containers consume the one analysis queue;
#   4. `down` and `up` again (volumes kept): every email, its status and its filed file are still there,
#      the queues too, and new mail flows again;
# then removes the stack and its volumes. Exits non-zero with a message at the first failure (the
# containers' logs are printed then). Not part of npm test or .ci/run: it takes minutes.
#
# Engine: Docker with `docker compose` when a Docker daemon answers; otherwise podman through its
# Docker-compatible socket with docker-compose (scripts/install-podman.sh). Base images: pulled
# (node, mysql, rabbitmq, nginx, debian); when they cannot be pulled, local stand-ins are built from
# Debian packages (scripts/container-standins.sh). The machine's CA bundle is mounted into the image
# build (podman) when it exists, never copied into the image.
#
# Settings: SMOKE_KEEP=1 leaves the stack running; SMOKE_TIMEOUT (seconds, 600) bounds each wait;
# SMOKE_STANDINS=1 uses the stand-ins without trying to pull.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
TIMEOUT="${SMOKE_TIMEOUT:-600}"
PROJECT=postroom-smoke
say() { printf 'smoke: %s\n' "$*" >&2; }
phase() { printf '\nsmoke: [%3d s] %s\n' "$((SECONDS - started))" "$*" >&2; }

# --- engine ------------------------------------------------------------------------------------
pump_pid=""
service_pid=""
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && [ -z "${DOCKER_HOST:-}" ]; then
  ENGINE=docker
  if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
elif command -v podman >/dev/null 2>&1; then
  ENGINE=podman
  command -v docker-compose >/dev/null 2>&1 ||
    { say "FAIL: podman found but no docker-compose: run scripts/install-podman.sh"; exit 1; }
  sock="${XDG_RUNTIME_DIR:-/run}/podman/podman.sock"
  [ "$(id -u)" -eq 0 ] && sock=/run/podman/podman.sock
  export DOCKER_HOST="unix://$sock"
  if ! curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; then
    mkdir -p "$(dirname "$sock")"
    podman system service --time=0 "unix://$sock" >/tmp/postroom-smoke-podman-service.log 2>&1 &
    service_pid=$!
    for _ in $(seq 1 50); do curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && break; sleep 0.2; done
    curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 ||
      { say "FAIL: podman's Docker-compatible socket did not come up ($sock)"; exit 1; }
  fi
  COMPOSE=(docker-compose)
  export BUILDAH_FORMAT=docker # keep HEALTHCHECK instructions (the OCI format drops them)
else
  say "FAIL: no container engine: install Docker, or podman (scripts/install-podman.sh)"
  exit 1
fi
say "engine: $ENGINE, compose: ${COMPOSE[*]}"

envfile="$(mktemp /tmp/postroom-smoke-env.XXXXXX)"
compose_file=docker-compose.yml
if [ "${COMPOSE[*]}" = docker-compose ] && grep -q '^name: ' docker-compose.yml; then
  # docker-compose 1.x refuses the top-level `name` (the project name is given with -p anyway). The
  # copy sits beside the original so that its relative paths (./infra/..., ./data/...) stay the same.
  compose_file=".docker-compose.smoke-$$.yml"
  sed '/^name: /d' docker-compose.yml >"$compose_file"
fi
files=(-f "$compose_file")
if [ "$ENGINE" = podman ]; then
  # Through its Docker-compatible API, podman asks for Docker's default limits (1048576 open files,
  # unlimited processes), which runc cannot set here: every container would fail to start ("error
  # setting rlimits"). An override gives each service the limits of containers.conf
  # (scripts/install-podman.sh), which are known to work; both must be given, or the one left out falls
  # back to the default that fails.
  override=".docker-compose.smoke-ulimits-$$.yml"
  {
    echo "services:"
    "${COMPOSE[@]}" -f "$compose_file" --profile demo config --services | while read -r svc; do
      printf '  %s:\n    ulimits:\n' "$svc"
      printf '      nofile: { soft: 1024, hard: 4096 }\n'
      printf '      nproc: { soft: 4096, hard: 8192 }\n'
    done
  } >"$override"
  files+=(-f "$override")
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" --env-file "$envfile" "${files[@]}" --profile demo "$@"; }

logs_shown=0
cleanup() {
  local code=$?
  if [ "$code" -ne 0 ] && [ "$logs_shown" -eq 0 ]; then
    say "logs of the stack (last 40 lines per service):"
    compose logs --no-color --tail=40 2>/dev/null | tail -n 400 >&2 || true
  fi
  [ -n "$pump_pid" ] && kill "$pump_pid" 2>/dev/null || true
  if [ "${SMOKE_KEEP:-}" = 1 ]; then
    say "SMOKE_KEEP=1: the stack stays up (project $PROJECT, env file $envfile)"
  else
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    rm -f "$envfile"
    [ "$compose_file" = docker-compose.yml ] || rm -f "$compose_file"
    rm -f ".docker-compose.smoke-ulimits-$$.yml"
    [ -n "$service_pid" ] && kill "$service_pid" 2>/dev/null || true
  fi
  if [ "$code" -eq 0 ]; then say "PASS in $((SECONDS - started)) s"; else say "FAILED after $((SECONDS - started)) s"; fi
}
trap cleanup EXIT
fail() {
  say "FAIL: $*"
  exit 1
}

# podman runs health checks from systemd timers; with no systemd nothing runs them, and Compose waits
# for `healthy` forever. This loop runs the due checks of the project's containers instead.
if [ "$ENGINE" = podman ] && [ ! -d /run/systemd/system ]; then
  (
    while :; do
      for c in $(podman ps -q --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null); do
        podman healthcheck run "$c" >/dev/null 2>&1 || true
      done
      sleep 3
    done
  ) &
  pump_pid=$!
fi

# --- base images -------------------------------------------------------------------------------
phase "base images"
NODE_IMAGE="${NODE_IMAGE:-node:24-bookworm-slim}"
MYSQL_IMAGE="${MYSQL_IMAGE:-mysql:8.4}"
RABBITMQ_IMAGE="${RABBITMQ_IMAGE:-rabbitmq:3.13-management}"
NGINX_IMAGE="${NGINX_IMAGE:-nginxinc/nginx-unprivileged:1.27-alpine}"
DEBIAN_IMAGE="${DEBIAN_IMAGE:-debian:bookworm-slim}"
pulled=1
if [ "${SMOKE_STANDINS:-}" != 1 ]; then
  for image in "$NODE_IMAGE" "$MYSQL_IMAGE" "$RABBITMQ_IMAGE" "$NGINX_IMAGE" "$DEBIAN_IMAGE"; do
    if ! "$ENGINE" image inspect "$image" >/dev/null 2>&1 && ! timeout 120 "$ENGINE" pull -q "$image" >/dev/null 2>&1; then
      say "cannot pull $image"
      pulled=0
      break
    fi
  done
else
  pulled=0
fi
if [ "$pulled" -eq 0 ]; then
  [ "$ENGINE" = podman ] || fail "base images cannot be pulled, and local stand-ins need podman"
  say "building local stand-ins from Debian packages (scripts/container-standins.sh)"
  # Captured first: a failing command inside `eval "$(...)"` would not stop the script.
  standins="$(ENGINE=podman scripts/container-standins.sh)" || fail "the stand-in images did not build (output above)"
  eval "$standins"
fi
cat >"$envfile" <<ENV
NODE_IMAGE=$NODE_IMAGE
MYSQL_IMAGE=$MYSQL_IMAGE
RABBITMQ_IMAGE=$RABBITMQ_IMAGE
NGINX_IMAGE=$NGINX_IMAGE
DEBIAN_IMAGE=$DEBIAN_IMAGE
POSTROOM_IMAGE=postroom:smoke
ENV

# Ports nothing else uses (this stack must not collide with local MySQL, RabbitMQ or a running stack).
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
TOKEN="smoke-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PORT="$(free_port)"
{
  echo "POSTROOM_PORT=$PORT"
  echo "MYSQL_PORT=$(free_port)"
  echo "RABBITMQ_PORT=$(free_port)"
  echo "RABBITMQ_UI_PORT=$(free_port)"
  echo "DOVECOT_PORT=$(free_port)"
  # Secrets come from this env file, as a user's come from .env.
  echo "API_TOKENS=$TOKEN"
  echo "LOG_LEVEL=info"
} >>"$envfile"

# --- images ------------------------------------------------------------------------------------
phase "building the Postroom image (NODE_IMAGE=$NODE_IMAGE)"
build_args=(--build-arg "NODE_IMAGE=$NODE_IMAGE")
ca=/etc/ssl/certs/ca-certificates.crt
if [ "$ENGINE" = podman ] && [ -f "$ca" ]; then
  # Mounted for the build only (npm behind a TLS-inspecting proxy); never part of a layer.
  build_args+=(--format docker -v "$ca:/run/host-ca.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/host-ca.crt)
fi
build_start=$SECONDS
"$ENGINE" build "${build_args[@]}" -t postroom:smoke . >/tmp/postroom-smoke-build.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-build.log >&2; fail "the Postroom image did not build (log above)"; }
say "built postroom:smoke in $((SECONDS - build_start)) s"
size="$("$ENGINE" image inspect postroom:smoke --format '{{.Size}}')"
say "image size: $((size / 1000000)) MB"
"$ENGINE" run --rm --entrypoint sh postroom:smoke -c \
  'for t in gcc cc make g++ python3; do command -v $t && exit 1; done; [ ! -d /root/.npm/_cacache ] && [ ! -d node_modules/typescript ] && [ ! -d node_modules/vitest ]' \
  >/dev/null || fail "the image holds a compiler, an npm cache or development dependencies"
say "lean: no compiler, no npm cache, no development dependencies"
dovecot_args=()
[ "$ENGINE" = podman ] && dovecot_args=(--format docker)
"$ENGINE" build "${dovecot_args[@]}" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t postroom-dovecot:local infra/dovecot \
  >/tmp/postroom-smoke-dovecot.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-dovecot.log >&2; fail "the demo Dovecot image did not build"; }

# --- start -------------------------------------------------------------------------------------
api() { curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1"; }
# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 3 s until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local until=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $until ] || fail "timed out after $limit s waiting for $what"
    sleep 3
  done
}
# JSON checks with Node (the host has it: Postroom needs it).
json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);$1})"; }

# Emails done, and at least one attachment filed (status uploaded), seen through NGINX.
pipeline_done() {
  local body
  body="$(api "/api/v1/emails?limit=100")" || return 1
  printf '%s' "$body" | json "const i=j.items;process.exit(i.length>=${1:-1}&&i.every(e=>e.status==='done')?0:1)"
}

phase "starting the stack (compose --profile demo up -d)"
up_start=$SECONDS
compose up -d --no-build >/tmp/postroom-smoke-up.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-up.log >&2; fail "compose up failed (log above)"; }
wait_for "$TIMEOUT" "NGINX and the API (/readyz through NGINX)" curl -fsS --max-time 5 "http://127.0.0.1:$PORT/readyz"
say "stack ready through NGINX $((SECONDS - up_start)) s after compose up"

phase "waiting for the demo mail to go through the pipeline"
wait_for "$TIMEOUT" "five demo emails, all done" pipeline_done 5
emails="$(api "/api/v1/emails?limit=100")"
first_ids="$(printf '%s' "$emails" | json "console.log(j.items.map(e=>e.id).sort().join(' '))")"
say "$(printf '%s' "$emails" | json "console.log(j.items.length+' emails done: '+j.items.map(e=>JSON.stringify(e.subject)).join(', '))")"
filed=""
for id in $first_ids; do
  detail="$(api "/api/v1/emails/$id")"
  f="$(printf '%s' "$detail" | json "const a=j.attachments.find(a=>a.drive.status==='uploaded');if(a)console.log(a.drive.folder+'/'+a.filename)")"
  [ -n "$f" ] && filed="$f" && break
done
[ -n "$filed" ] || fail "no attachment was filed (drive status uploaded) in any demo email"
say "filed: $filed"
have_file() { compose exec -T drive sh -c "find /app/data/drive -type f | grep -qF -- \"\$1\"" sh "$(basename "$filed")"; }
have_file || fail "the filed file $(basename "$filed") is not in the drive-files volume"
say "the filed file is in the drive-files volume"
curl -fsS --max-time 5 "http://127.0.0.1:$PORT/api/v1/emails" >/dev/null 2>&1 &&
  fail "the API answered without a token"
say "the API refuses requests without a token"

# Start-up time of the image: the api container started again, until its own /readyz answers 200
# (asked inside the container; MySQL and RabbitMQ are already up). Then NGINX must find it again.
compose stop api >/dev/null 2>&1 || fail "compose stop api failed"
restart_start=$(date +%s%N)
compose start api >/dev/null 2>&1 || fail "compose start api failed"
ready_inside() {
  compose exec -T api node -e \
    "fetch('http://127.0.0.1:8080/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" >/dev/null 2>&1
}
until ready_inside; do
  [ $((($(date +%s%N) - restart_start) / 1000000000)) -lt 120 ] ||
    fail "the api container did not become ready within 120 s of its start"
  sleep 0.2
done
say "start-up time: the api container answered /readyz $((($(date +%s%N) - restart_start) / 1000000)) ms after compose start"
wait_for 60 "NGINX to find the restarted api container" curl -fsS --max-time 5 "http://127.0.0.1:$PORT/readyz"

# --- scale ---------------------------------------------------------------------------------------
phase "scaling analysis to 3 replicas"
compose up -d --no-build --no-recreate --scale analysis=3 analysis >/tmp/postroom-smoke-scale.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-scale.log >&2; fail "compose up --scale analysis=3 failed"; }
analysis_consumers() {
  compose exec -T rabbitmq rabbitmqctl -q list_queues name consumers |
    awk '$1 == "postroom.attachment-analysis" { print $2; exit }'
}
n=""
until=$((SECONDS + 180))
while [ $SECONDS -lt $until ]; do
  n="$(analysis_consumers)" || true
  [ "$n" = 3 ] && break
  sleep 3
done
[ "$n" = 3 ] || fail "the analysis queue has ${n:-no} consumers, expected 3 (one per replica)"
say "three analysis replicas consume the one analysis queue"
queues_before="$(compose exec -T rabbitmq rabbitmqctl -q list_queues name | sort | tr '\n' ' ')"

# --- restart: volumes keep everything ------------------------------------------------------------
phase "down and up again (volumes kept)"
compose down >/tmp/postroom-smoke-down.log 2>&1 || fail "compose down failed"
compose up -d --no-build >/tmp/postroom-smoke-up2.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-up2.log >&2; fail "compose up after down failed"; }
wait_for "$TIMEOUT" "the API after the restart" curl -fsS --max-time 5 "http://127.0.0.1:$PORT/readyz"
after="$(api "/api/v1/emails?limit=100")"
for id in $first_ids; do
  printf '%s' "$after" | json "const e=j.items.find(e=>e.id==='$id');process.exit(e&&e.status==='done'?0:1)" ||
    fail "email $id is gone or not done after the restart (MySQL volume)"
done
say "every email is still there and done after the restart"
have_file || fail "the filed file is gone after the restart (drive-files volume)"
say "the filed file is still there"
queues_after="$(compose exec -T rabbitmq rabbitmqctl -q list_queues name | sort | tr '\n' ' ')"
[ "$queues_before" = "$queues_after" ] || fail "the RabbitMQ queues changed across the restart (rabbitmq-data volume)"
say "the RabbitMQ queues are still there"
# The mail generator ran again on `up`: a second batch flows through the restarted stack.
wait_for "$TIMEOUT" "the second batch of demo mail, all done" pipeline_done 10
say "a second batch of demo mail went through after the restart"

phase "stopping"
logs_shown=1
