#!/usr/bin/env bash
# Runs Rill on a fresh machine: installs what is missing (idempotent), builds, serves.
#   bash scripts/run.sh             # debug build, http://127.0.0.1:3000
#   bash scripts/run.sh --release   # optimised build (slower to build, faster to run)
# Configure providers with environment variables (see .env.example); with none, Rill uses its
# built-in development model and needs no key and no network.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-tools.sh
ensure_build_tools
if [ "${1:-}" = "--release" ]; then
  ensure_wasm_opt
fi
exec cargo leptos serve "$@"
