# What the container checks share (sourced by scripts/test-container.sh and
# scripts/test-replicas.sh, after scripts/install-tools.sh): Docker from apt when missing, a base
# image when no registry answers, BuildKit builds, free loopback ports. The caller defines
# `log` and `fail`.

ensure_docker() {
  if ! command -v dockerd >/dev/null; then
    log "installing docker.io from apt"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq docker.io >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return; sleep 0.5; done
    fail "dockerd did not start (see /var/log/dockerd.log)"
  fi
}

# The Dockerfile pins debian:bookworm-slim by digest. With a registry that is what is built on;
# without one, the same thing is built from Debian's archive (debootstrap minbase, trimmed like
# the official slim image), tagged debian:bookworm-slim and passed in as DEBIAN_IMAGE.
base_image=""
ensure_base_image() {
  local pinned
  pinned=$(awk -F= '/^ARG DEBIAN_IMAGE=/ { print $2; exit }' Dockerfile)
  if docker image inspect "$pinned" >/dev/null 2>&1 || docker pull "$pinned" >/dev/null 2>&1; then
    base_image=$pinned
    return
  fi
  base_image=debian:bookworm-slim
  docker image inspect debian:bookworm-slim >/dev/null 2>&1 && return
  log "no registry: making debian:bookworm-slim with debootstrap"
  command -v debootstrap >/dev/null || {
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >/dev/null
  }
  local mirror rootfs
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  rootfs=$(mktemp -d)
  as_root debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
  as_root sh -c "cd '$rootfs' && rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc/* \
    usr/share/man/* usr/share/info/* usr/share/locale/* var/log/*"
  as_root tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  as_root rm -rf "$rootfs"
}

# BuildKit (cache mounts). Docker 23+ builds with it by default; Debian's 20.10 needs the switch,
# and its own client (a newer client without buildx refuses).
docker_build() {
  local client=docker
  [ -x /usr/bin/docker ] && client=/usr/bin/docker
  # A TLS-inspecting proxy's CA (this machine's extra CAs), for the build's downloads.
  local ca=""
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    ca=$(cat /usr/local/share/ca-certificates/*.crt)
  fi
  DOCKER_BUILDKIT=1 "$client" build --build-arg EXTRA_CA_CERT="$ca" \
    --build-arg DEBIAN_IMAGE="$base_image" "$@"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
