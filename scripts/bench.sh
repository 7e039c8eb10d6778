#!/usr/bin/env bash
# Many people at once against the release build (issue 27): starts target/release/rill and the fake
# provider (100 tokens, 300 ms to the first, then 20 ms each) on 127.0.0.1, sends N messages at
# once through `send_message` as the page does, and prints one table (first token and whole reply
# beside the provider's own, failed sends, server CPU per answer, memory idle / peak / 30 s after,
# database bytes written per answer, Stop → provider connection closed) and the budgets with
# pass/fail; then the same in accounts mode at ACCOUNT_LEVELS, each send by a person of its own
# (named by the trusted-proxy header), and the chat page's first load in bytes (headless
# Chromium); the figures go to JSON beside it.
#   bash scripts/bench.sh [LEVELS] [PORT] [ACCOUNT_LEVELS]
#       e.g. bash scripts/bench.sh 1,100,1000 5830 1000   (ACCOUNT_LEVELS "" for none)
# Build first: bash scripts/release-build.sh; cargo build --release -p fake-provider
# (RILL_BIN, FAKE_BIN and SITE_ROOT name other builds). Uses ports PORT and PORT+1.
set -euo pipefail
cd "$(dirname "$0")/.."
levels=${1:-1,100,1000}
port=${2:-5830}
account_levels=${3-1000}
target=${CARGO_TARGET_DIR:-target}
export RILL_BIN=${RILL_BIN:-$target/release/rill}
export FAKE_BIN=${FAKE_BIN:-$target/release/fake-provider}
for bin in "$RILL_BIN" "$FAKE_BIN"; do
  [ -x "$bin" ] || { echo "$bin is missing: build it first (see the top of this script)" >&2; exit 2; }
done
# A send holds a connection to Rill and Rill one to the provider: 5,000 at once need ~15,000 files.
ulimit -n "$(ulimit -Hn)"
out=${BENCH_OUT:-target/bench}
mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
{
  echo "# scripts/bench.sh $levels, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  node end2end/bench-load.mjs --levels "$levels" --accounts "$account_levels" --port "$port" --json "$out/bench-$stamp.json"
} | tee "$out/bench-$stamp.md"
echo "table: $out/bench-$stamp.md, figures: $out/bench-$stamp.json" >&2
