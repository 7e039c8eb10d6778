#!/usr/bin/env bash
# Measures an import and an export of a large archive against a real server: the time, and how
# much the server's resident memory grows above what it held before (sampled every 100 ms).
#   usage: scripts/measure-import.sh BINARY ARCHIVE [PORT]
# ARCHIVE: e.g. from scripts/generate-chatgpt-export.py (5,000 conversations, 200 MB).
set -euo pipefail
binary=$1 archive=$2 port=${3:-5420}
dir=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
LEPTOS_SITE_ADDR=127.0.0.1:$port LEPTOS_SITE_ROOT=${LEPTOS_SITE_ROOT:-target/site} \
  RILL_DATABASE=$dir/rill.db RILL_MAX_IMPORT_MB=1024 RUST_LOG=warn "$binary" &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }
# Samples RSS until the file `$1` exists; prints the peak in KiB.
peak() { local top=0 now; while [ ! -e "$1" ]; do now=$(rss); [ "$now" -gt "$top" ] && top=$now; sleep 0.1; done; echo "$top"; }
before=$(rss)
peak "$dir/imported" > "$dir/import-peak" &
sampler=$!
start=$(date +%s.%N)
curl -fsS -H 'content-type: application/octet-stream' --data-binary "@$archive" \
  "http://127.0.0.1:$port/import" | tail -1 > "$dir/summary"
end=$(date +%s.%N)
touch "$dir/imported"; wait "$sampler"
echo "import: $(stat -c %s "$archive") bytes in $(echo "$end - $start" | bc) s; RSS before $before KiB, peak $(cat "$dir/import-peak") KiB (+$(( $(cat "$dir/import-peak") - before )) KiB)"
echo "summary: $(cut -c1-300 "$dir/summary")"
before=$(rss)
peak "$dir/exported" > "$dir/export-peak" &
sampler=$!
start=$(date +%s.%N)
curl -fsS "http://127.0.0.1:$port/export/all.zip" -o "$dir/all.zip"
end=$(date +%s.%N)
touch "$dir/exported"; wait "$sampler"
echo "export: $(stat -c %s "$dir/all.zip") bytes in $(echo "$end - $start" | bc) s; RSS before $before KiB, peak $(cat "$dir/export-peak") KiB (+$(( $(cat "$dir/export-peak") - before )) KiB)"
