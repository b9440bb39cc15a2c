#!/usr/bin/env bash
# Proves the deployment on real containers (npm run smoke:containers): builds the Postroom image,
# starts the Compose stack with the `demo` and `observability` profiles, waits until the demo mail has
# gone through the pipeline, and checks it the way a user would:
#   1. through NGINX and the status API: emails `done`, an accepted attachment filed (`uploaded`);
#   2. the filed file is in the `drive-files` volume;
#   3. NGINX: rapid console sign-in POSTs and /api requests beyond the burst get 429 while a normal
#      pace passes, and the client address reaches Postroom as HTTP_TRUST_PROXY reads it (the same
#      `remote` in NGINX's log line and Postroom's for one request id; a forged X-Forwarded-For is not
#      believed);
#   4. Prometheus: every Postroom role and RabbitMQ (15692) are `up` targets, the alert rules of
#      infra/prometheus/alerts.yml are loaded and evaluate, another batch of demo mail shows in its
#      counters, and every PromQL expression of infra/grafana/dashboards/*.json evaluates
#      (scripts/check-dashboards.mjs: what Grafana would draw, panel by panel);
#   5. `--scale analysis=3`: three analysis containers consume the one analysis queue, and Prometheus
#      scrapes each;
#   6. `down` and `up` again (volumes kept): every email, its status and its filed file are still there,
#      the queues too, and new mail flows again;
# then removes the stack and its volumes. Exits non-zero with a message at the first failure (the
# containers' logs are printed then). Not part of npm test or .ci/run: it takes minutes.
#
# Engine: Docker with `docker compose` when a Docker daemon answers; otherwise podman through its
# Docker-compatible socket with docker-compose (scripts/install-podman.sh). Base images: pulled
# (node, mysql, rabbitmq, nginx, debian, prometheus); when they cannot be pulled, local stand-ins are
# built from Debian packages (scripts/container-standins.sh). Images with neither (Gotenberg, Grafana,
# Loki, Promtail: not in Debian) leave their services out, which the output says; with real images
# every service starts, and Grafana and Loki are checked too. The machine's CA bundle is mounted into
# the image build (podman) when it exists, never copied into the image.
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
PROFILES=(--profile demo --profile observability)
if [ "$ENGINE" = podman ]; then
  # Through its Docker-compatible API, podman asks for Docker's default limits (1048576 open files,
  # unlimited processes), which runc cannot set here: every container would fail to start ("error
  # setting rlimits"). An override gives each service the limits of containers.conf
  # (scripts/install-podman.sh), which are known to work; both must be given, or the one left out falls
  # back to the default that fails.
  override=".docker-compose.smoke-ulimits-$$.yml"
  {
    echo "services:"
    "${COMPOSE[@]}" -f "$compose_file" "${PROFILES[@]}" config --services | while read -r svc; do
      printf '  %s:\n    ulimits:\n' "$svc"
      printf '      nofile: { soft: 1024, hard: 4096 }\n'
      printf '      nproc: { soft: 4096, hard: 8192 }\n'
    done
  } >"$override"
  files+=(-f "$override")
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" --env-file "$envfile" "${files[@]}" "${PROFILES[@]}" "$@"; }

logs_shown=0
summary=()
# ok MESSAGE: says it, and keeps it for the summary printed at the end.
ok() {
  say "$*"
  summary+=("$*")
}
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
  if [ "$code" -eq 0 ]; then
    say "summary:"
    for line in "${summary[@]}"; do say "  - $line"; done
    say "PASS in $((SECONDS - started)) s"
  else
    say "FAILED after $((SECONDS - started)) s"
  fi
}
trap cleanup EXIT
fail() {
  say "FAIL: $*"
  exit 1
}

# podman runs health checks from systemd timers; with no systemd nothing runs them, and Compose waits
# for `healthy` forever. This loop runs the health checks of the project's containers every 3 s instead
# (`podman healthcheck run` records the result, which Compose then reads).
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
PROMETHEUS_IMAGE="${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.2}"
# have_image IMAGE: present, or pulled now (not with SMOKE_STANDINS=1).
have_image() {
  "$ENGINE" image inspect "$1" >/dev/null 2>&1 && return 0
  [ "${SMOKE_STANDINS:-}" != 1 ] && timeout 120 "$ENGINE" pull -q "$1" >/dev/null 2>&1
}
pulled=1
for image in "$NODE_IMAGE" "$MYSQL_IMAGE" "$RABBITMQ_IMAGE" "$NGINX_IMAGE" "$DEBIAN_IMAGE" "$PROMETHEUS_IMAGE"; do
  if ! have_image "$image"; then
    [ "${SMOKE_STANDINS:-}" = 1 ] || say "cannot pull $image"
    pulled=0
    break
  fi
done
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
PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE
POSTROOM_IMAGE=postroom:smoke
ENV

# Services whose images have no stand-in (not in Debian's archive): started when the image is here or
# can be pulled, left out otherwise, with the services that need them.
GOTENBERG_IMAGE="${GOTENBERG_IMAGE:-gotenberg/gotenberg:8}"
GRAFANA_IMAGE="${GRAFANA_IMAGE:-grafana/grafana:11.3.0}"
LOKI_IMAGE="${LOKI_IMAGE:-grafana/loki:3.2.1}"
PROMTAIL_IMAGE="${PROMTAIL_IMAGE:-grafana/promtail:3.2.1}"
left_out=()
have_image "$GOTENBERG_IMAGE" || {
  left_out+=(gotenberg convert)
  # No converter: the roles must not wait for conversions nobody does (the demo mail has no office
  # documents anyway).
  echo "CONVERTER=off" >>"$envfile"
  say "LEFT OUT: gotenberg ($GOTENBERG_IMAGE cannot be pulled and has no Debian package) and convert, which"
  say "  needs it; CONVERTER=off for the other roles. With the image, both start and office documents become PDFs."
}
have_image "$GRAFANA_IMAGE" || {
  left_out+=(grafana)
  say "LEFT OUT: grafana ($GRAFANA_IMAGE cannot be pulled and has no Debian package). Grafana itself is not"
  say "  started; every query of its dashboards (infra/grafana/dashboards) is evaluated through Prometheus"
  say "  below instead, which is what Grafana would draw. With the image, Grafana starts with them provisioned."
}
have_image "$LOKI_IMAGE" || {
  left_out+=(loki promtail)
  say "LEFT OUT: loki and promtail ($LOKI_IMAGE cannot be pulled and has no Debian package): logs are not"
  say "  collected in this run. With the images, Promtail sends every container's JSON lines to Loki."
}
have_image "$PROMTAIL_IMAGE" || {
  case " ${left_out[*]} " in *" promtail "*) ;; *)
    left_out+=(promtail)
    say "LEFT OUT: promtail ($PROMTAIL_IMAGE cannot be pulled and has no Debian package): logs are not collected."
    ;;
  esac
}
{
  echo "GOTENBERG_IMAGE=$GOTENBERG_IMAGE"
  echo "GRAFANA_IMAGE=$GRAFANA_IMAGE"
  echo "LOKI_IMAGE=$LOKI_IMAGE"
  echo "PROMTAIL_IMAGE=$PROMTAIL_IMAGE"
} >>"$envfile"
# Every service of both profiles, but those left out; named explicitly on every `up`, since Compose
# would otherwise start them all.
services=()
while read -r svc; do
  case " ${left_out[*]} " in *" $svc "*) ;; *) services+=("$svc") ;; esac
done < <(compose config --services)
started_service() { case " ${services[*]} " in *" $1 "*) return 0 ;; esac; return 1; }
say "services: ${services[*]}"
[ "${#left_out[@]}" -eq 0 ] || say "left out: ${left_out[*]}"

# Ports nothing else uses (this stack must not collide with local MySQL, RabbitMQ or a running stack).
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
TOKEN="smoke-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PORT="$(free_port)"
PROMETHEUS_PORT="$(free_port)"
GRAFANA_PORT="$(free_port)"
GRAFANA_PASSWORD="smoke-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
{
  echo "POSTROOM_PORT=$PORT"
  echo "MYSQL_PORT=$(free_port)"
  echo "RABBITMQ_PORT=$(free_port)"
  echo "RABBITMQ_UI_PORT=$(free_port)"
  echo "DOVECOT_PORT=$(free_port)"
  echo "PROMETHEUS_PORT=$PROMETHEUS_PORT"
  echo "GRAFANA_PORT=$GRAFANA_PORT"
  # Secrets come from this env file, as a user's come from .env.
  echo "API_TOKENS=$TOKEN"
  echo "GRAFANA_ADMIN_PASSWORD=$GRAFANA_PASSWORD"
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
# (podman without systemd says it cannot set up the health-check timer of a `run`: not needed here.)
"$ENGINE" run --rm --entrypoint sh postroom:smoke -c \
  'for t in gcc cc make g++ python3; do command -v $t && exit 1; done; [ ! -d /root/.npm/_cacache ] && [ ! -d node_modules/typescript ] && [ ! -d node_modules/vitest ]' \
  >/dev/null 2>/tmp/postroom-smoke-lean.log || { cat /tmp/postroom-smoke-lean.log >&2; fail "the image holds a compiler, an npm cache or development dependencies"; }
ok "image postroom:smoke: $((size / 1000000)) MB, no compiler, no npm cache, no development dependencies"
dovecot_args=()
[ "$ENGINE" = podman ] && dovecot_args=(--format docker)
"$ENGINE" build "${dovecot_args[@]}" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t postroom-dovecot:local infra/dovecot \
  >/tmp/postroom-smoke-dovecot.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-dovecot.log >&2; fail "the demo Dovecot image did not build"; }

# --- start -------------------------------------------------------------------------------------
BASE="http://127.0.0.1:$PORT"
api() { curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" "$BASE$1"; }
prom() { curl -fsS --max-time 10 "http://127.0.0.1:$PROMETHEUS_PORT$1"; }
# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 3 s until it succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  local until=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $until ]; then
      "$@" >&2 || true # once more, with what it says
      fail "timed out after $limit s waiting for $what"
    fi
    sleep 3
  done
}
# JSON checks with Node (the host has it: Postroom needs it).
json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const j=JSON.parse(s);$1})"; }
# healthy SERVICE: every container of SERVICE reports a passing health check.
healthy() {
  local states
  states="$("$ENGINE" ps --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Status}}')"
  [ -n "$states" ] && ! printf '%s\n' "$states" | grep -qv '(healthy)'
}

# Emails done, and at least one attachment filed (status uploaded), seen through NGINX.
pipeline_done() {
  local body
  body="$(api "/api/v1/emails?limit=100")" || return 1
  printf '%s' "$body" | json "const i=j.items;process.exit(i.length>=${1:-1}&&i.every(e=>e.status==='done')?0:1)"
}

phase "starting the stack (compose --profile demo --profile observability up -d, ${#services[@]} services)"
up_start=$SECONDS
compose up -d --no-build "${services[@]}" >/tmp/postroom-smoke-up.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-up.log >&2; fail "compose up failed (log above)"; }
wait_for "$TIMEOUT" "NGINX and the API (/readyz through NGINX)" curl -fsS --max-time 5 "$BASE/readyz"
ok "stack ready through NGINX $((SECONDS - up_start)) s after compose up"

phase "waiting for the demo mail to go through the pipeline"
wait_for "$TIMEOUT" "five demo emails, all done" pipeline_done 5
expected=5
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
ok "demo mail: 5 emails done through NGINX and the status API; filed $filed"
have_file() { compose exec -T drive sh -c "find /app/data/drive -type f | grep -qF -- \"\$1\"" sh "$(basename "$filed")"; }
have_file || fail "the filed file $(basename "$filed") is not in the drive-files volume"
ok "the filed file is in the drive-files volume"
curl -fsS --max-time 5 "$BASE/api/v1/emails" >/dev/null 2>&1 &&
  fail "the API answered without a token"
ok "the API refuses requests without a token"

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
ok "start-up time: the api container answered /readyz $((($(date +%s%N) - restart_start) / 1000000)) ms after compose start"
wait_for 60 "NGINX to find the restarted api container" curl -fsS --max-time 5 "$BASE/readyz"
# Each NGINX worker caches its own lookups, negative ones too, for the resolver's valid=10s: another
# worker may still answer 502 ("api could not be resolved") for up to 10 s.
sleep 11

# --- NGINX: rate limits and the client address ----------------------------------------------------
phase "NGINX: rate limits (infra/nginx/postroom.conf) and the client address"
# sign_in TOKEN: the console's sign-in form, as a browser fills it in (a new browser each time: the
# form's cookie and CSRF token); prints the status of the POST.
sign_in() {
  local csrf jar code
  jar="$(mktemp /tmp/postroom-smoke-cookies.XXXXXX)"
  csrf="$(curl -sS --max-time 10 -c "$jar" -b "$jar" "$BASE/console/sign-in" |
    sed -n 's/.*name="_csrf" value="\([^"]*\)".*/\1/p' | head -n 1)"
  code="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" \
    --data-urlencode "_csrf=$csrf" --data-urlencode "token=$1" --data-urlencode "next=/console" \
    "$BASE/console/sign-in")"
  rm -f "$jar"
  echo "$code"
}
# nginx_limited CURL-ARGS...: the request gets NGINX's 429 (its JSON message), not Postroom's.
nginx_limited() { curl -sS --max-time 10 "$@" | grep -q 'Too many requests from this address'; }
code="$(sign_in "$TOKEN")"
[ "$code" = 303 ] || fail "console sign-in with the right token through NGINX answered $code, expected 303"
# A burst of wrong tokens: NGINX lets 5 through (Postroom refuses them: 401), then answers 429 itself.
codes=""
for _ in $(seq 1 12); do codes="$codes $(sign_in wrong-token)"; done
codes="${codes# }"
case " $codes " in *" 429 "*) ;; *) fail "12 rapid sign-in POSTs got no 429 from NGINX: $codes" ;; esac
[ -z "$(printf '%s\n' $codes | grep -vxE '401|429')" ] || fail "rapid sign-in POSTs answered other than 401/429: $codes"
nginx_limited --data-urlencode "token=wrong-token" "$BASE/console/sign-in" ||
  fail "the sign-in 429s are not NGINX's (its JSON body RATE_LIMITED)"
# One slot comes back every 6 s: a person typing their token again is served.
sleep 7
code="$(sign_in "$TOKEN")"
[ "$code" = 303 ] || fail "a sign-in 7 s after the burst answered $code, expected 303 (a normal pace must pass)"
ok "NGINX sign-in limit: 12 rapid POSTs -> $(printf '%s\n' $codes | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}'); 7 s later a sign-in passes (303)"

# /api: 60 requests at once from one address; 20 beyond the rate are served (burst), the rest get 429.
bodies="$(mktemp -d /tmp/postroom-smoke-burst.XXXXXX)"
codes="$(seq 1 60 | xargs -P 60 -I{} curl -sS --max-time 20 -o "$bodies/{}" -w '%{http_code}\n' \
  -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/emails?limit=1")"
n200="$(printf '%s\n' "$codes" | grep -cx 200 || true)"
n429="$(printf '%s\n' "$codes" | grep -cx 429 || true)"
# NGINX's 429s, by their body (Postroom's own would say "retry in N s").
nginx429="$( (grep -l 'Too many requests from this address' "$bodies"/* 2>/dev/null || true) | wc -l)"
rm -rf "$bodies"
[ "$n429" -gt 0 ] || fail "60 simultaneous /api requests got no 429 from NGINX (200: $n200)"
[ "$nginx429" -eq "$n429" ] || fail "of the $n429 answers 429 to /api, only $nginx429 are NGINX's (its JSON body RATE_LIMITED)"
[ "$n200" -ge 20 ] || fail "60 simultaneous /api requests: only $n200 served, the burst is 20"
[ $((n200 + n429)) -eq 60 ] || fail "60 simultaneous /api requests answered other than 200/429: $(printf '%s\n' "$codes" | sort | uniq -c | tr '\n' ' ')"
# Then a normal pace (4 a second, under the 10/s rate) passes entirely.
sleep 3
for i in $(seq 1 12); do
  api "/api/v1/emails?limit=1" >/dev/null || fail "request $i of 12 at 4 a second through NGINX was refused"
  sleep 0.25
done
ok "NGINX /api limit: 60 simultaneous requests -> $n200 served, $n429 x 429; 12 at 4/s all served"

# The client address: NGINX replaces X-Forwarded-For with the address it sees, and Postroom (trusting
# NGINX through HTTP_TRUST_PROXY) logs that address as `remote` for the same request id. A forged
# header must not be believed.
rid="$(curl -sS --max-time 10 -o /dev/null -D - -H "Authorization: Bearer $TOKEN" -H 'X-Forwarded-For: 203.0.113.9' \
  "$BASE/api/v1/stats" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')"
[ -n "$rid" ] || fail "no X-Request-Id on an answer through NGINX"
remotes() {
  compose logs --no-color api nginx 2>/dev/null | grep -F "\"requestId\":\"$rid\"" | sed 's/^[^{]*//' |
    json_lines "if(l.requestId==='$rid'&&l.remote!==undefined)out[l.uri!==undefined?'nginx':'postroom']=l.remote"
}
json_lines() { node -e "const out={};for(const t of require('fs').readFileSync(0,'utf8').split('\n')){let l;try{l=JSON.parse(t)}catch{continue}$1}if(!out.nginx||!out.postroom)process.exit(1);console.log(out.nginx+' '+out.postroom)"; }
wait_for 30 "NGINX's and Postroom's log lines of request $rid" remotes
read -r nginx_remote app_remote <<<"$(remotes)"
[ "$app_remote" != 203.0.113.9 ] || fail "Postroom believed a forged X-Forwarded-For (remote 203.0.113.9)"
[ "$app_remote" = "$nginx_remote" ] ||
  fail "Postroom logged the client as $app_remote, NGINX saw $nginx_remote (HTTP_TRUST_PROXY or X-Forwarded-For wrong)"
ok "client address: NGINX and Postroom both log $nginx_remote for request $rid; a forged X-Forwarded-For is ignored"

# --- observability -------------------------------------------------------------------------------
phase "observability: Prometheus (targets, alert rules, the demo mail, the dashboards' queries)"
wait_for "$TIMEOUT" "Prometheus to be healthy" healthy prometheus
roles=()
for r in imap imap-demo inbox api analysis drive outbound notify convert scheduler telegram; do
  started_service "$r" && roles+=("$r")
done
# targets_up [ANALYSIS_REPLICAS]: every started role has its replicas up in job postroom, RabbitMQ in
# job rabbitmq. Prints what is missing (on failure) or the target count.
targets_up() {
  prom /api/v1/targets | json "
    const t=j.data.activeTargets, up=(f)=>t.filter(x=>x.health==='up'&&f(x.labels)).length, miss=[];
    for (const r of '${roles[*]}'.split(' ')) {
      const want = r==='analysis' ? ${1:-1} : 1;
      if (up(l=>l.job==='postroom'&&l.role===r) < want) miss.push(r);
    }
    if (up(l=>l.job==='rabbitmq') < 1) miss.push('rabbitmq');
    console.log(miss.length ? 'missing: '+miss.join(' ') : t.filter(x=>x.health==='up').length+' targets up');
    process.exit(miss.length ? 1 : 0)"
}
wait_for 180 "every Postroom role and RabbitMQ as up targets in Prometheus" targets_up
ok "Prometheus: $(targets_up) (${#roles[@]} roles: ${roles[*]}; rabbitmq:15692)"
# The alert rules: every alert of alerts.yml loaded, and evaluated without error (health ok).
alerts="$(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' infra/prometheus/alerts.yml | sort | tr '\n' ' ')"
[ -n "$alerts" ] || fail "no alert names found in infra/prometheus/alerts.yml"
rules_ok() {
  prom /api/v1/rules | json "
    const r=j.data.groups.flatMap(g=>g.rules).filter(r=>r.type==='alerting');
    const want='$alerts'.trim().split(' '), bad=want.filter(a=>!r.some(x=>x.name===a&&x.health==='ok'));
    process.exit(bad.length?1:0)"
}
wait_for 120 "the alert rules of alerts.yml loaded and evaluated in Prometheus" rules_ok
firing="$(prom /api/v1/rules | json "console.log(j.data.groups.flatMap(g=>g.rules).filter(r=>r.type==='alerting'&&r.state!=='inactive').map(r=>r.name+' ('+r.state+')').join(', ')||'none')")"
ok "Prometheus: $(wc -w <<<"$alerts") alert rules loaded and evaluating; pending or firing: $firing"
# promql EXPR [TIME]: the value of a one-number query, now or at TIME (0 when it has no result).
promql() {
  prom "/api/v1/query?query=$(node -e 'console.log(encodeURIComponent(process.argv[1]))' "$1")${2:+&time=$2}" |
    json "console.log(j.data.result.length?Number(j.data.result[0].value[1]):0)"
}
DONE_QUERY='sum(postroom_messages_published_total{routing_key="email.processed"})'
in_prometheus() { node -e 'process.exit(Number(process.argv[1])>=Number(process.argv[2])?0:1)' "$(promql "$DONE_QUERY")" "$1"; }
wait_for 120 "the first batch's email.processed events in Prometheus ($DONE_QUERY > 0)" in_prometheus 1
before="$(promql "$DONE_QUERY")"
# Another batch while Prometheus watches every role, so the dashboards' rates show mail flowing.
compose start mailgen >/dev/null 2>&1 || fail "compose start mailgen (another batch of demo mail) failed"
expected=$((expected + 5))
wait_for "$TIMEOUT" "the second batch of demo mail, all done" pipeline_done "$expected"
# One email.processed event per email.
wait_for 120 "the second batch in Prometheus ($DONE_QUERY from $before to $((before + 5)))" in_prometheus $((before + 5))
ok "demo mail in Prometheus: $DONE_QUERY went from $before to $(promql "$DONE_QUERY"); emails processed (histogram count): $(promql 'sum(postroom_email_processed_seconds_count)')"
# One more scrape of every target, so each rate has two samples around the batch.
sleep 20
# A moment already scraped and stored, to find again after the restart.
t_mark="$(($(date +%s) - 10))"
mark="$(promql "$DONE_QUERY" "$t_mark")"
# What Grafana would draw: every expression of every dashboard, over the stack's life so far. The
# panels that must show the demo mail (non-zero data) are named.
node scripts/check-dashboards.mjs "http://127.0.0.1:$PROMETHEUS_PORT" --window $((SECONDS - up_start)) \
  --require 'Mail in and done per minute' \
  --require 'Time from arrival to processed' \
  --require 'Messages handled per second, by consumer' \
  --require 'Handler time p95, by consumer' \
  --require 'Statement time p95, by kind' \
  --require 'Published and delivered per second' \
  --require 'Consumers, by queue' \
  >/tmp/postroom-smoke-dashboards.log 2>&1 ||
  { cat /tmp/postroom-smoke-dashboards.log >&2; fail "a dashboard query failed or a panel that must show the demo mail has no data (above)"; }
sed 's/^/smoke:   /' /tmp/postroom-smoke-dashboards.log >&2
ok "dashboards through Prometheus: $(tail -n 1 /tmp/postroom-smoke-dashboards.log); panels: $(grep -c '^  data ' /tmp/postroom-smoke-dashboards.log) with data, $(grep -c '^  zeros ' /tmp/postroom-smoke-dashboards.log) all zero, $(grep -c '^  no data ' /tmp/postroom-smoke-dashboards.log) without data"
if started_service grafana; then
  wait_for "$TIMEOUT" "Grafana to be healthy" healthy grafana
  grafana_dashboards() {
    curl -fsS --max-time 10 -u "admin:$GRAFANA_PASSWORD" "http://127.0.0.1:$GRAFANA_PORT/api/search?type=dash-db" |
      json "const u=j.map(d=>d.uid);process.exit(u.includes('postroom-pipeline')&&u.includes('postroom-rabbitmq')?0:1)"
  }
  wait_for 120 "Grafana to provision the Postroom and RabbitMQ dashboards" grafana_dashboards
  ok "Grafana on 127.0.0.1:$GRAFANA_PORT with the Postroom and RabbitMQ dashboards provisioned"
else
  ok "Grafana NOT started (no image here); its dashboards' queries were evaluated through Prometheus above"
fi
if started_service loki && started_service promtail; then
  wait_for "$TIMEOUT" "Loki to be healthy" healthy loki
  ok "Loki healthy, Promtail running"
else
  ok "Loki and Promtail NOT started (no images here): logs were not collected"
fi

# --- scale ---------------------------------------------------------------------------------------
phase "scaling analysis to 3 replicas"
compose up -d --no-build --no-recreate --scale analysis=3 analysis >/tmp/postroom-smoke-scale.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-scale.log >&2; fail "compose up --scale analysis=3 failed"; }
analysis_consumers() {
  compose exec -T rabbitmq rabbitmqctl -q list_queues name consumers |
    awk '$1 ~ /^postroom\.attachment-analysis(\.v[0-9]+)?$/ { print $2; exit }'
}
n=""
until=$((SECONDS + 180))
while [ $SECONDS -lt $until ]; do
  n="$(analysis_consumers)" || true
  [ "$n" = 3 ] && break
  sleep 3
done
[ "$n" = 3 ] || fail "the analysis queue has ${n:-no} consumers, expected 3 (one per replica)"
ok "three analysis replicas consume the one analysis queue"
wait_for 180 "Prometheus to scrape the three analysis replicas" targets_up 3
ok "Prometheus scrapes the three analysis replicas (found through Compose's DNS)"
queues_before="$(compose exec -T rabbitmq rabbitmqctl -q list_queues name | sort | tr '\n' ' ')"

# --- restart: volumes keep everything ------------------------------------------------------------
phase "down and up again (volumes kept)"
compose down >/tmp/postroom-smoke-down.log 2>&1 || fail "compose down failed"
compose up -d --no-build "${services[@]}" >/tmp/postroom-smoke-up2.log 2>&1 ||
  { tail -n 40 /tmp/postroom-smoke-up2.log >&2; fail "compose up after down failed"; }
wait_for "$TIMEOUT" "the API after the restart" curl -fsS --max-time 5 "$BASE/readyz"
after="$(api "/api/v1/emails?limit=100")"
for id in $first_ids; do
  printf '%s' "$after" | json "const e=j.items.find(e=>e.id==='$id');process.exit(e&&e.status==='done'?0:1)" ||
    fail "email $id is gone or not done after the restart (MySQL volume)"
done
ok "after down/up: every email is still there and done"
have_file || fail "the filed file is gone after the restart (drive-files volume)"
ok "after down/up: the filed file is still there"
queues_after="$(compose exec -T rabbitmq rabbitmqctl -q list_queues name | sort | tr '\n' ' ')"
[ "$queues_before" = "$queues_after" ] || fail "the RabbitMQ queues changed across the restart (rabbitmq-data volume)"
ok "after down/up: the RabbitMQ queues are still there"
# The mail generator ran again on `up`: another batch flows through the restarted stack.
expected=$((expected + 5))
wait_for "$TIMEOUT" "another batch of demo mail after the restart, all done" pipeline_done "$expected"
ok "after down/up: another batch of demo mail went through ($expected emails done)"
wait_for "$TIMEOUT" "Prometheus after the restart" healthy prometheus
kept="$(promql "$DONE_QUERY" "$t_mark")"
[ "$kept" = "$mark" ] || fail "Prometheus lost its data across the restart: $DONE_QUERY at $t_mark was $mark, now reads $kept"
ok "after down/up: Prometheus kept its data (prometheus-data volume): $DONE_QUERY at the mark still $kept"

phase "stopping"
logs_shown=1
