#!/usr/bin/env bash
# Builds Rill's container images and proves them, offline, on loopback:
#   bash scripts/test-container.sh
# Installs what is missing (Docker from apt; a debian:bookworm-slim base made with debootstrap
# when no registry answers), builds both variants, then runs the `hosted` image with a read-only
# root and no capabilities against the fake provider on 127.0.0.1 and checks: the health check
# turns healthy, a streamed turn, Stop cutting the upstream, /metrics counting the turn, data
# surviving a container replacement, `docker stop` draining inside Docker's 10 s, non-root, the
# read-only root; then the `local` image answering with its built-in model. Prints the figures
# (sizes, build times, start to ready, idle memory) at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-tools.sh
source scripts/container-lib.sh

log() { printf '[test-container] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

ensure_docker
ensure_base_image
ensure_end2end_packages

step "build the fake provider"
cargo build -q -p fake-provider
fake_port=$(free_port)
target/debug/fake-provider --port "$fake_port" --tokens 40 --delay-ms 20 >/dev/null 2>&1 &
fake_pid=$!

name=rill-container-test
volume=rill-container-test-data
checker=""
turns=$(mktemp)
build_log=$(mktemp)
cleanup() {
  [ -n "$checker" ] && kill "$checker" 2>/dev/null || true
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
  kill "$fake_pid" 2>/dev/null || true
  rm -f "$turns" "$build_log"
}
trap cleanup EXIT
docker volume rm -f "$volume" >/dev/null 2>&1 || true

step "build the images (hosted, then local: the second reuses every stage but the model)"
build() { # build TARGET: quiet unless it fails
  docker_build --target "$1" -t "rill:$1" . >"$build_log" 2>&1 || { cat "$build_log" >&2; fail "docker build --target $1"; }
}
started=$SECONDS
build hosted
build_hosted=$((SECONDS - started))
started=$SECONDS
build local
build_local=$((SECONDS - started))

port=$(free_port)
token=container-test-metrics-token
password=container-test-password
run() { # run IMAGE [docker run options...]: the hardened container, on loopback
  local image=$1
  shift
  docker run -d --name "$name" --network host --read-only --tmpfs /tmp --cap-drop ALL \
    --security-opt no-new-privileges --health-interval 1s --health-start-period 0s \
    -v "$volume:/data" -e LEPTOS_SITE_ADDR="127.0.0.1:$port" -e RILL_METRICS_TOKEN="$token" \
    "$@" "$image" >/dev/null
}
wait_ready() { # prints milliseconds from now until /readyz answers 200
  local t0 t1
  t0=$(date +%s%N)
  for _ in $(seq 1 600); do
    if curl -sf --max-time 2 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      t1=$(date +%s%N)
      echo $(((t1 - t0) / 1000000))
      return
    fi
    sleep 0.05
  done
  docker logs "$name" >&2 || true
  fail "the container did not become ready"
}
wait_healthy() {
  for _ in $(seq 1 60); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ] && return
    sleep 0.5
  done
  fail "the health check never passed: $(docker inspect -f '{{json .State.Health}}' "$name")"
}
check() { timeout 300 node end2end/container-check.mjs "$@"; }
export RILL_URL="http://127.0.0.1:$port" FAKE_URL="http://127.0.0.1:$fake_port" \
  RILL_METRICS_TOKEN="$token" RILL_PASSWORD="$password"

step "run the hosted image: read-only root, no capabilities, accounts mode"
started_ns=$(date +%s%N)
run rill:hosted -e RILL_OPENAI_COMPAT_URL="http://127.0.0.1:$fake_port/v1" -e RILL_OPENAI_COMPAT_NAME=fake
wait_ready >/dev/null
ready_ms=$((($(date +%s%N) - started_ns) / 1000000))
wait_healthy
log "healthy; ready ${ready_ms} ms after docker run"
docker exec -e RILL_NEW_PASSWORD="$password" "$name" rill user add --admin root
[ "$(docker exec "$name" id -u)" = 10001 ] || fail "the server does not run as the rill user"
[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$name")" = true ] || fail "root not read-only"
# As root inside the container, so that only the read-only mount can refuse the write.
if docker exec -u 0 "$name" sh -c 'echo x > /usr/local/bin/x' 2>/dev/null; then fail "the root filesystem is writable"; fi
[ "$(docker inspect -f '{{.HostConfig.CapDrop}}' "$name")" = "[ALL]" ] || fail "capabilities not dropped"
sleep 2
idle_memory=$(docker stats --no-stream --format '{{.MemUsage}}' "$name" | cut -d/ -f1 | tr -d ' ')
check turn-stop-metrics

step "replace the container: the data stays in the volume"
docker rm -f "$name" >/dev/null
run rill:hosted -e RILL_OPENAI_COMPAT_URL="http://127.0.0.1:$fake_port/v1" -e RILL_OPENAI_COMPAT_NAME=fake
wait_ready >/dev/null
check data-kept

step "docker stop drains with the shipped 8 s grace: a reply finishes, a longer one is interrupted, new turns are refused, exit inside 10 s"
check start-long-turn >"$turns" &
checker=$!
for _ in $(seq 1 200); do [ -s "$turns" ] && break; sleep 0.05; done
[ -s "$turns" ] || fail "the turns to drain did not start"
stop_started=$SECONDS
docker stop "$name" >/dev/null
stop_seconds=$((SECONDS - stop_started))
wait "$checker" || fail "the turn running at docker stop did not end as expected"
checker=""
[ "$stop_seconds" -lt 10 ] || fail "docker stop took ${stop_seconds} s (Docker kills at 10)"
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
[ "$exit_code" = 0 ] || fail "exit code $exit_code after docker stop"
docker rm "$name" >/dev/null
run rill:hosted -e RILL_OPENAI_COMPAT_URL="http://127.0.0.1:$fake_port/v1" -e RILL_OPENAI_COMPAT_NAME=fake
wait_ready >/dev/null
check drained "$(cat "$turns")"
docker rm -f "$name" >/dev/null

step "the local image answers with its built-in model, no key, no provider"
docker volume rm -f "$volume" >/dev/null
run rill:local
local_ready_ms=$(wait_ready)
docker exec -e RILL_NEW_PASSWORD="$password" "$name" rill user add --admin root >/dev/null
check local-model
local_idle_memory=$(docker stats --no-stream --format '{{.MemUsage}}' "$name" | cut -d/ -f1 | tr -d ' ')
docker rm -f "$name" >/dev/null

size() { docker image inspect -f '{{.Size}}' "$1"; }
compressed() { docker save "$1" | gzip -6 | wc -c; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
step "figures"
printf 'image rill:hosted  %s (%s gzip-compressed), built in %s s\n' \
  "$(mb "$(size rill:hosted)")" "$(mb "$(compressed rill:hosted)")" "$build_hosted"
printf 'image rill:local   %s (%s gzip-compressed), built in %s s after hosted\n' \
  "$(mb "$(size rill:local)")" "$(mb "$(compressed rill:local)")" "$build_local"
printf 'docker run to ready: hosted %s ms, local (model loaded) %s ms\n' "$ready_ms" "$local_ready_ms"
printf 'idle memory: hosted %s, local %s\n' "$idle_memory" "$local_idle_memory"
printf 'docker stop with a reply running: %s s\n' "$stop_seconds"
printf '\ncontainer checks passed\n'
