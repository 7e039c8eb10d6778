#!/usr/bin/env bash
# Runs every check and test on a fresh machine, installing what is missing (idempotent):
# formatting, unused or duplicated dependencies, clippy for both builds, unit and HTTP-level tests
# (faults, concurrency, shutdown and kill -9 of the real binary, nginx in front; the
# HTTP-level tests that touch storage again on a throwaway Postgres), then browser
# tests in headless Chromium against the built app and the fake provider.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's time, printed at the end (and when a step fails), so a slow step shows itself.
started=$SECONDS
steps=()
step_name="" step_started=$SECONDS
end_step() {
  [ -n "$step_name" ] && steps+=("$(printf '%5ds  %s' "$((SECONDS - step_started))" "$step_name")")
  step_name=""
}
step() {
  end_step
  step_name=$*
  step_started=$SECONDS
  printf '\n==> %s\n' "$*"
}
print_steps() {
  end_step
  printf '\nsteps:\n'
  printf '  %s\n' "${steps[@]}"
  printf '%5ds  in all\n' "$((SECONDS - started))"
}

# leptos_config reads LEPTOS_OUTPUT_NAME at compile time (cargo-leptos sets it for its builds):
# the browser tests run the server binary the Rust tests build, which must name the site's files
# as the WASM build does, and every step compiles leptos the same way.
export LEPTOS_OUTPUT_NAME=rill

logs=$(mktemp -d)
trap 'status=$?; [ "$status" -ne 0 ] && print_steps; rm -rf "$logs"' EXIT

step "set-up (tools, browser, test packages, local model)"
source scripts/install-tools.sh
ensure_build_tools
ensure_chromium
ensure_nginx
ensure_postgres
ensure_openai_sdk
ensure_pyyaml
ensure_cargo_machete
ensure_cargo_deny
ensure_end2end_packages
bash scripts/fetch-model.sh

step "format"
cargo fmt --all -- --check

step "dependencies"
bash scripts/check-deps.sh

step "module arrows (no two server modules depend on each other)"
python3 scripts/check-module-arrows.py

step "deployment files (compose.replicas.yaml, deploy/)"
"$OPENAI_SDK_VENV/bin/python" scripts/check-deploy.py

step "security advisories (RustSec, offline)"
bash scripts/check-advisories.sh

step "clippy (server build)"
cargo clippy --workspace --all-targets --features ssr -- -D warnings
step "clippy (browser build)"
cargo clippy --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

step "unit and HTTP-level tests"
cargo test --workspace --features ssr 2>&1 | tee "$logs/cargo-test.txt"

# The HTTP-level tests that store something, again with every app on Postgres (a database each
# in a throwaway cluster, tests/it/postgres.rs): the modules of tests/it that drive storage
# through the endpoints (turns, replies, branches, budgets and limits, accounts and sessions,
# search, shares, titles, import/export, attachments, API keys and /v1, service accounts, OIDC
# sign-in). Left out: the modules about the wire and
# the process, whose storage is the same calls as above (providers, faults, connections,
# security, ops, nginx, local_model), lifecycle (the real binary: one of its tests serves from
# Postgres whatever the engine) and engines/postgres_turns (both engines already).
storage_modules=(
  accounts:: api_keys:: attachments:: attachments_out:: batches:: branches:: budgets:: checkpoints::
  concurrency:: context:: continuation:: conversations:: groups:: long_conversations:: oidc:: quotas::
  search:: service_accounts::
  shares:: tabs:: thinking:: titles:: transfer:: turns::
)
# `--workspace` as above, so that the features resolve alike and the test binary just built is
# run again (without it, cargo builds rill and its workspace crates a second time: 5 minutes).
step "HTTP-level storage tests on Postgres"
RILL_TEST_ENGINE=postgres cargo test --workspace --features ssr --test it -- "${storage_modules[@]}" \
  2>&1 | tee "$logs/cargo-test-postgres.txt"

step "build the app and the fake provider"
# The server binary is the one the tests just built (the same features, the same
# LEPTOS_OUTPUT_NAME, at target/debug/rill): only the WASM and the site are left to build.
cargo leptos build --split --frontend-only
cargo build -p fake-provider

step "browser tests (headless Chromium)"
(cd end2end && npx playwright test) 2>&1 | tee "$logs/playwright.txt"

# One closing line for the whole run (set -o pipefail has already stopped at any failure).
print_steps
rust=$(cat "$logs/cargo-test.txt" "$logs/cargo-test-postgres.txt" |
  awk '/^test result: ok\./ { n += $4 } END { print n + 0 }')
browser=$(awk '/^ *[0-9]+ passed/ { n = $1 } END { print n + 0 }' "$logs/playwright.txt")
printf '\nall checks passed in %ss (%s Rust tests, %s browser tests)\n' "$((SECONDS - started))" "$rust" "$browser"
printf '%s passed, 0 failed\n' "$((rust + browser))"
