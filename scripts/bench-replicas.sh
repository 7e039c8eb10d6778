#!/usr/bin/env bash
# Measures replicas on one Postgres (examples/bench_replicas.rs): Stop through the replica
# running a turn and through another, a second reader's lag on each, and a turn's cost on
# Postgres against SQLite. Starts a throwaway Postgres (Debian's package, durable settings) on a
# free loopback port in a temporary directory, and stops it at the end.
#   bash scripts/bench-replicas.sh            # release build
#   BENCH_PROFILE=dev bash scripts/bench-replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-tools.sh
ensure_postgres
export LEPTOS_OUTPUT_NAME=rill
profile="${BENCH_PROFILE:-release}"

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=$(mktemp -d)
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$dir"
as_pg "$bin/initdb" -D "$dir/data" -A trust -U rill -E UTF8 >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$bin/createdb" -h 127.0.0.1 -p "$port" -U rill rill

RILL_BENCH_POSTGRES="postgres://rill@127.0.0.1:$port/rill" \
  cargo run --profile "$profile" --features ssr --example bench_replicas
