#!/usr/bin/env bash
# Builds the docker lab on a machine with Docker but no image registry (CI, air-gapped labs):
#   1. local/debian:bookworm         debootstrap minbase, `docker import`ed
#   2. local/node:20-bookworm-slim   that plus this host's Node >= 20 (binary, headers, npm) laid out
#                                    like the official node images (/usr/local), which docker/Dockerfile
#                                    expects
#   3. docker-compose build          with DEBIAN_BASE / TWINSEC_BASE pointing at those two
# Existing base images are reused; REBUILD_BASE=1 makes them again. Needs root (debootstrap), docker,
# docker-compose, debootstrap. MIRROR overrides the Debian mirror.
# Then: cd docker && docker-compose up -d   (the built images carry their tags; no build args needed)
set -euo pipefail
cd "$(dirname "$0")"

DEBIAN_BASE=local/debian:bookworm
TWINSEC_BASE=local/node:20-bookworm-slim
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

log() { printf '=== %s\n' "$*"; }
have_image() { [ "${REBUILD_BASE:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if have_image "$DEBIAN_BASE"; then
  log "$DEBIAN_BASE exists"
else
  log "debootstrap bookworm from $MIRROR -> $DEBIAN_BASE"
  debootstrap --variant=minbase bookworm "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
  rm -f "$tmp"/rootfs/var/cache/apt/archives/*.deb
  # The mirror we could reach is the one the images' apt-get must use too.
  echo "deb $MIRROR bookworm main" >"$tmp/rootfs/etc/apt/sources.list"
  tar -C "$tmp/rootfs" -c . | docker import -c 'CMD ["bash"]' - "$DEBIAN_BASE"
  rm -rf "$tmp/rootfs"
fi

if have_image "$TWINSEC_BASE"; then
  log "$TWINSEC_BASE exists"
else
  node_bin="$(node -p process.execPath)"
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" -lt 20 ]; then echo "host Node is $(node -v); twinsec needs >= 20" >&2; exit 1; fi
  prefix="$(dirname "$(dirname "$node_bin")")"
  npm_dir="$(npm root -g)/npm"
  [ -f "$prefix/include/node/node_api.h" ] || { echo "no Node headers under $prefix/include/node" >&2; exit 1; }
  log "$TWINSEC_BASE from $DEBIAN_BASE + $node_bin ($(node -v)), $prefix/include/node, $npm_dir"
  ctx="$tmp/node"
  mkdir -p "$ctx/usr/local/bin" "$ctx/usr/local/include" "$ctx/usr/local/lib/node_modules"
  cp "$node_bin" "$ctx/usr/local/bin/node"
  cp -r "$prefix/include/node" "$ctx/usr/local/include/"
  cp -r "$npm_dir" "$ctx/usr/local/lib/node_modules/"
  # The host's trust store goes along: where egress passes a TLS-intercepting proxy, npm ci in the
  # build needs its CA (Node's built-in roots are enough everywhere else).
  mkdir -p "$ctx/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/etc/ssl/certs/"
  cat >"$ctx/Dockerfile" <<EOF
FROM $DEBIAN_BASE
COPY usr /usr
COPY etc /etc
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
  && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
  && node --version && npm --version
CMD ["node"]
EOF
  docker build -q -t "$TWINSEC_BASE" "$ctx"
fi

log "docker-compose build (DEBIAN_BASE=$DEBIAN_BASE TWINSEC_BASE=$TWINSEC_BASE)"
DEBIAN_BASE="$DEBIAN_BASE" TWINSEC_BASE="$TWINSEC_BASE" docker-compose build "$@"
