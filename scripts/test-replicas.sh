#!/usr/bin/env bash
# Brings up compose.replicas.yaml (Postgres, three Rill replicas, nginx round-robin) and uses it
# from outside as a person would, offline and on loopback:
#   bash scripts/test-replicas.sh
# Installs what is missing (Docker and Compose from apt, the base image as scripts/test-container.sh
# makes it), builds `rill:local` as the compose file names it, and runs the compose file as
# written but for this machine's differences: every service on the host's network bound to
# 127.0.0.1 (test traffic stays on loopback; so the balancer publishes no port), the replicas
# answering with the fake provider, and, when no registry answers for `postgres:16` and
# `nginx:1.27`, stand-ins built from Debian's packages with the same interface (the POSTGRES_*
# settings; a server block in conf.d). The balancer's config is deploy/nginx.replicas.conf with
# only its addresses changed.
# Checks, through the balancer unless said: a conversation whose turns land on every replica; a
# tab on one replica following a reply written by another; a reply started through one replica,
# re-attached through a second and stopped through the third; kill -9 of a replica mid-reply
# (interrupted within the lease, Continue, and chatting on, in Chromium too); the killed
# replica started again; `docker stop` of a replica with a reply running (it finishes). Prints
# the figures at the end. KEEP_LOGS=1 keeps the services' logs and the screenshot.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-tools.sh
source scripts/container-lib.sh

log() { printf '[test-replicas] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

compose=()
ensure_compose() {
  if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
    return
  fi
  command -v docker-compose >/dev/null || {
    log "installing docker-compose from apt"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq docker-compose >/dev/null
  }
  compose=(docker-compose)
}

# IMAGE (what the compose file names) or, with no registry, a stand-in built from Debian.
image_or_standin() { # image_or_standin IMAGE STANDIN_TAG DOCKERFILE_DIR
  if docker image inspect "$1" >/dev/null 2>&1 || docker pull "$1" >/dev/null 2>&1; then
    echo "$1"
    return
  fi
  log "no registry for $1: building $2 from Debian's packages"
  docker_build -q -t "$2" "$3" >/dev/null || fail "building the stand-in $2"
  echo "$2"
}

ensure_docker
ensure_compose
ensure_base_image
ensure_end2end_packages
ensure_pyyaml

work=$(mktemp -d)
project=rill-replicas-test
fake_pid=""
checker=""
compose_run() {
  "${compose[@]}" -p "$project" --project-directory "$PWD" -f "$work/compose.replicas.yaml" \
    -f "$work/override.yaml" "$@"
}
cleanup() {
  [ -n "$checker" ] && kill "$checker" 2>/dev/null || true
  if [ -f "$work/override.yaml" ]; then
    [ "${KEEP_LOGS:-}" = 1 ] && compose_run logs --no-color >"$work/compose.log" 2>&1 && log "logs: $work/compose.log"
    compose_run down -v --remove-orphans >/dev/null 2>&1 || true
  fi
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
  [ "${KEEP_LOGS:-}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# --- the stand-ins (only without a registry) ----------------------------------------------------
mkdir -p "$work/postgres" "$work/nginx"
cat >"$work/postgres/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:$PATH
ENTRYPOINT ["sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
DOCKERFILE
# The official image's contract: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and
# POSTGRES_INITDB_ARGS on the first start, `postgres ARGS` as the command.
cat >"$work/postgres/entrypoint.sh" <<'ENTRYPOINT'
set -eu
[ "${1:-}" = postgres ] && shift
install -d -o postgres -g postgres -m 0700 "$PGDATA"
install -d -o postgres -g postgres /var/run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "$POSTGRES_PASSWORD" >/tmp/pw && chown postgres /tmp/pw
  runuser -u postgres -- initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pw \
    --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm /tmp/pw
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  runuser -u postgres -- pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  runuser -u postgres -- psql -q -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
  runuser -u postgres -- pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec runuser -u postgres -- postgres -D "$PGDATA" "$@"
ENTRYPOINT
cat >"$work/nginx/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default \
 && ln -sf /dev/stderr /var/log/nginx/error.log && ln -sf /dev/stdout /var/log/nginx/access.log
CMD ["nginx", "-g", "daemon off;"]
DOCKERFILE

step "images: rill:local as the compose file builds it; Postgres and nginx"
started=$SECONDS
docker_build --target local -t rill:local . >"$work/build.log" 2>&1 || { tail -50 "$work/build.log" >&2; fail "docker build"; }
build_seconds=$((SECONDS - started))
postgres_image=$(image_or_standin postgres:16 rill-test/postgres-standin "$work/postgres")
nginx_image=$(image_or_standin nginx:1.27 rill-test/nginx-standin "$work/nginx")

step "the fake provider"
cargo build -q -p fake-provider
fake_port=$(free_port)
target/debug/fake-provider --port "$fake_port" --tokens 20 --delay-ms 10 >/dev/null 2>&1 &
fake_pid=$!

# Debian's Compose (docker-py) refuses published ports on the host's network, and an override
# can add to a list but not remove it: what runs is the file as written less the balancer's
# `ports` (its address is set in its config below).
"$OPENAI_SDK_VENV/bin/python" - "$work/compose.replicas.yaml" <<'PY'
import sys, yaml
compose = yaml.safe_load(open("compose.replicas.yaml"))
del compose["services"]["balancer"]["ports"]
yaml.safe_dump(compose, open(sys.argv[1], "w"), sort_keys=False)
PY

# --- the override: loopback ports, the fake provider, the stand-ins -----------------------------
pg_port=$(free_port)
lb_port=$(free_port)
ports=("$(free_port)" "$(free_port)" "$(free_port)")
token=replicas-test-metrics-token
password=replicas-test-password
export RILL_DB_PASSWORD=replicas-test-db-password
sed -e "s/server rill-\([123]\):3000/server 127.0.0.1:RILL_PORT_\1/" -e "s/listen 80;/listen 127.0.0.1:$lb_port;/" \
  -e "s/RILL_PORT_1/${ports[0]}/; s/RILL_PORT_2/${ports[1]}/; s/RILL_PORT_3/${ports[2]}/" \
  deploy/nginx.replicas.conf >"$work/nginx.conf"
grep -q "127.0.0.1:${ports[2]}" "$work/nginx.conf" || fail "deploy/nginx.replicas.conf no longer names rill-1..3:3000"
replica() { # replica N: the override of service rill-N
  cat <<YAML
  rill-$1:
    network_mode: host
    environment:
      RILL_DATABASE: postgres://rill:$RILL_DB_PASSWORD@127.0.0.1:$pg_port/rill
      LEPTOS_SITE_ADDR: 127.0.0.1:${ports[$(($1 - 1))]}
      RILL_TRUSTED_PROXIES: 127.0.0.1/32
      RILL_OPENAI_COMPAT_URL: http://127.0.0.1:$fake_port/v1
      RILL_OPENAI_COMPAT_NAME: fake
      RILL_METRICS_TOKEN: $token
YAML
}
{
  cat <<YAML
services:
  postgres:
    image: $postgres_image
    network_mode: host
    environment:
      PGPORT: "$pg_port"
    command: ["postgres", "-c", "listen_addresses=127.0.0.1"]
YAML
  replica 1
  replica 2
  replica 3
  cat <<YAML
  balancer:
    image: $nginx_image
    network_mode: host
    volumes:
      - $work/nginx.conf:/etc/nginx/conf.d/default.conf:ro
volumes:
  rill-postgres:
    name: $project-postgres
YAML
} >"$work/override.yaml"

urls=$(printf 'http://127.0.0.1:%s,' "${ports[@]}")
export RILL_URL="http://127.0.0.1:$lb_port" REPLICA_URLS="${urls%,}" FAKE_URL="http://127.0.0.1:$fake_port" \
  RILL_PASSWORD="$password" RILL_METRICS_TOKEN="$token" RILL_COOKIE_JAR="$work/cookies.json"
check() { timeout 300 node end2end/replicas-check.mjs "$@"; }
wait_ready() { # wait_ready URL: seconds until /readyz answers 200
  local t0=$SECONDS
  for _ in $(seq 1 1200); do
    curl -sf --max-time 2 "$1/readyz" >/dev/null 2>&1 && { echo $((SECONDS - t0)); return; }
    sleep 0.1
  done
  compose_run logs --no-color --tail 50 >&2 || true
  fail "$1 did not become ready"
}

step "docker compose up: Postgres, three replicas, the balancer"
compose_run down -v --remove-orphans >/dev/null 2>&1 || true
started=$SECONDS
compose_run up -d --no-build >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "compose up"; }
for url in ${REPLICA_URLS//,/ } "$RILL_URL"; do wait_ready "$url" >/dev/null; done
up_seconds=$((SECONDS - started))
log "all three replicas and the balancer ready ${up_seconds} s after compose up"
compose_run exec -T -e RILL_NEW_PASSWORD="$password" rill-1 rill user add --admin root >/dev/null

step "use it through the balancer: every replica answers, a second tab follows, Stop from a third replica"
check use

step "kill -9 a replica mid-reply: its reply is interrupted within the lease, Continue, keep chatting"
check start-long 1 >"$work/long.json" &
checker=$!
for _ in $(seq 1 200); do [ -s "$work/long.json" ] && break; sleep 0.05; done
[ -s "$work/long.json" ] || fail "the reply to cut did not start"
compose_run kill -s SIGKILL rill-2 >/dev/null 2>&1
wait "$checker" || fail "the reply on the killed replica did not lose its connection"
checker=""
check after-kill "$(cat "$work/long.json")"
check page "$work/through-the-balancer.png"

step "the killed replica starts again and rejoins"
compose_run start rill-2 >/dev/null 2>&1
wait_ready "${RILL_URL%:*}:${ports[1]}" >/dev/null
check rejoined 1

step "docker stop of a replica with a reply running: it finishes, the balancer keeps answering"
check start-drain 0 >"$work/drain.json" &
checker=$!
for _ in $(seq 1 200); do [ -s "$work/drain.json" ] && break; sleep 0.05; done
[ -s "$work/drain.json" ] || fail "the reply to drain did not start"
started=$SECONDS
compose_run stop rill-1 >/dev/null 2>&1
stop_seconds=$((SECONDS - started))
wait "$checker" || fail "the reply running at docker stop did not finish"
checker=""
check drained "$(cat "$work/drain.json")"

step "figures"
printf 'images: rill:local built in %s s; postgres %s, balancer %s\n' "$build_seconds" "$postgres_image" "$nginx_image"
printf 'compose up to every replica and the balancer ready: %s s\n' "$up_seconds"
printf 'docker stop of a replica with a reply running: %s s\n' "$stop_seconds"
printf '\nreplica checks passed\n'
