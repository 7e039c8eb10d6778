#!/usr/bin/env bash
# Rill's release build: the server and the browser's WASM both compiled with
# `--cfg erase_components` (every component type-erased: the chat's first load is about 25 KB
# smaller after compression; docs/decisions.md, "Smaller first load").
#   bash scripts/release-build.sh [more cargo-leptos arguments]
#       = cargo leptos build --release --split --precompress, with the flags
#   source scripts/release-build.sh; cargo leptos serve --release --split --precompress
#       sets the flags only, for a cargo-leptos command of your own
# The server and the WASM must agree: a page rendered by a server built without the flag does not
# hydrate in a module built with it. Debug builds and `cargo test` stay without it, so they keep
# sharing their dependencies' builds.
erase="--cfg erase_components"
host=$(rustc -vV | sed -n 's/^host: //p')
host_var="CARGO_TARGET_$(printf '%s' "$host" | tr 'a-z.-' 'A-Z__')_RUSTFLAGS"
# Cargo adds these to `.cargo/config.toml`'s flags for the same target (the x86-64-v3 CPU level).
export "$host_var=${!host_var:-} $erase"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS:-} $erase"
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  cd "$(dirname "$0")/.."
  exec cargo leptos build --release --split --precompress "$@"
fi
