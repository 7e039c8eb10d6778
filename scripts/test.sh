#!/usr/bin/env bash
# Runs every check and test on a fresh machine, installing what is missing (idempotent):
# formatting, clippy for both builds, unit and HTTP-level tests, then browser tests in
# headless Chromium against the built app and the fake provider.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-tools.sh
ensure_build_tools
ensure_chromium
ensure_end2end_packages
bash scripts/fetch-model.sh

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

step "format"
cargo fmt --all -- --check

step "clippy (server build)"
cargo clippy --workspace --all-targets --features ssr -- -D warnings
step "clippy (browser build)"
cargo clippy --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

step "unit and HTTP-level tests"
cargo test --workspace --features ssr

step "build the app and the fake provider"
cargo leptos build
cargo build -p fake-provider

step "browser tests (headless Chromium)"
(cd end2end && npx playwright test)

printf '\nall checks passed in %ss\n' "$((SECONDS - started))"
