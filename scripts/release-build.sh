#!/usr/bin/env bash
# Rill's release build: the browser's WASM on a pinned nightly with its size flags, then the server
# on stable; both compiled with `--cfg erase_components` (every component type-erased). Each flag
# is there for the chat's first load (docs/decisions.md, "Smaller first load", has the bytes).
#   bash scripts/release-build.sh [more cargo-leptos arguments]
#       = cargo leptos build --release --split --precompress --frontend-only (nightly, WASM flags)
#         then the same with --server-only (stable)
#   bash scripts/release-build.sh --frontend-only | --server-only
#       one side alone (the WASM alone is the quick way to measure it)
#   bash scripts/release-build.sh --install-toolchain
#       installs the pinned nightly (with rust-src) and stops
#   source scripts/release-build.sh; cargo leptos serve --release --split --precompress --server-only
#       sets the server's flags, for a cargo-leptos command of your own after a build
# The server and the WASM must agree on erase_components: a page rendered by a server built
# without it does not hydrate in a module built with it. Debug builds, `cargo test` and CI stay on
# stable without these flags, so they keep sharing their dependencies' builds.

# The one place the WASM's toolchain is named. A nightly because only nightly rebuilds std with
# the module's own flags (-Zbuild-std) and lets a panic abort at once without its message
# machinery; pinned to a date so a release build is reproducible and a new nightly (which may
# rename these unstable flags, as it did panic_immediate_abort) is a deliberate change here.
wasm_toolchain=nightly-2026-05-20
# What each flag is for (its bytes are in docs/decisions.md):
#   -Zbuild-std               std, core and alloc compiled with the flags below and the
#                             wasm-release profile, not the prebuilt, speed-optimised ones
#   -Cpanic=immediate-abort   a panic is a trap: no panic messages, hook or formatting (the
#                             page cannot recover from one either way)
#   -Zlocation-detail=none    no source file names and lines for panics and `#[track_caller]`
#   -Zfmt-debug=none          `{:?}` writes nothing: nothing shown to a person uses Debug
wasm_std="std,panic_abort"
wasm_flags="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none"

erase="--cfg erase_components"
host=$(rustc -vV | sed -n 's/^host: //p')
host_var="CARGO_TARGET_$(printf '%s' "$host" | tr 'a-z.-' 'A-Z__')_RUSTFLAGS"
# Cargo adds these to `.cargo/config.toml`'s flags for the same target (the x86-64-v3 CPU level).
export "$host_var=${!host_var:-} $erase"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:-} $erase"

install_wasm_toolchain() {
  if ! rustup run "$wasm_toolchain" rustc --version >/dev/null 2>&1 \
    || [ ! -d "$(rustup run "$wasm_toolchain" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
    rustup toolchain install "$wasm_toolchain" --profile minimal --component rust-src
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  install_wasm_toolchain
  if [ "${1:-}" = "--install-toolchain" ]; then
    exit 0
  fi
  # --frontend-only or --server-only builds one side alone.
  front=yes server=yes args=()
  for arg in "$@"; do
    case "$arg" in
      --frontend-only) server=no ;;
      --server-only) front=no ;;
      *) args+=("$arg") ;;
    esac
  done
  if [ "$front" = yes ]; then
    RUSTUP_TOOLCHAIN="$wasm_toolchain" CARGO_UNSTABLE_BUILD_STD="$wasm_std" \
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS $wasm_flags" \
      cargo leptos build --release --split --precompress --frontend-only "${args[@]}"
  fi
  if [ "$server" = yes ]; then
    cargo leptos build --release --split --precompress --server-only "${args[@]}"
  fi
fi
