#!/bin/sh
# Builds strongSwan 5.9.8 with the load-tester plugin (Debian ships the plugin only in its source package)
# into a cache outside the repo, for `npm run bench:ike`. Idempotent: a finished build is reused.
# Never part of CI. Needs root only for apt-get (build dependencies) on the first run.
#
#   TWINSEC_BENCH_CACHE  cache root (default /var/cache/twinsec-bench)
#   STRONGSWAN_DEB_VERSION  Debian source version (default 5.9.8-5+deb12u5; the newer security
#                        update's source is not on every mirror)
set -eu

CACHE=${TWINSEC_BENCH_CACHE:-/var/cache/twinsec-bench}
VERSION=${STRONGSWAN_DEB_VERSION:-5.9.8-5+deb12u5}
UPSTREAM=${VERSION%%-*}
PREFIX=${STRONGSWAN_LT_PREFIX:-$CACHE/strongswan-$UPSTREAM}
SRC=$CACHE/src/strongswan-$VERSION
APTDIR=$CACHE/apt
STAMP=$PREFIX/.built-$VERSION

if [ -f "$STAMP" ] && [ -x "$PREFIX/libexec/ipsec/charon" ]; then
  echo "load-tester build cached: $PREFIX"
  exit 0
fi

start=$(date +%s)
mkdir -p "$CACHE/src" "$APTDIR/lists/partial"

# Build tools; the release tarball ships generated parsers, so bison/flex/gperf are not needed.
need=""
for p in gcc make pkg-config libssl-dev libgmp-dev dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need="$need $p"
done
if [ -n "$need" ]; then
  apt-get install -y --no-install-recommends $need
fi

if [ ! -d "$SRC" ]; then
  # A private sources list, so fetching the source needs no deb-src entry in the system's apt config.
  echo "deb-src http://deb.debian.org/debian bookworm main" >"$APTDIR/sources.list"
  O="-o Dir::Etc::SourceList=$APTDIR/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$APTDIR/lists"
  # shellcheck disable=SC2086
  apt-get $O update
  (cd "$CACHE/src" && apt-get $O source --download-only "strongswan=$VERSION")
  dsc=$CACHE/src/strongswan_$VERSION.dsc
  # apt already checked the files against the signed Sources index; the .dsc's own signature needs
  # debian-keyring, which is not installed here, hence --no-check.
  dpkg-source --no-check -x "$dsc" "$SRC.tmp"
  mv "$SRC.tmp" "$SRC"
fi

# Only what the load generator needs: openssl for crypto (also x25519 and MODP), the load-tester plugin with
# its fake kernel (no SAs installed on the initiator side), kernel-netlink because charon needs a kernel-net
# plugin to start, and vici/swanctl for status. Everything goes under $PREFIX, never over the system's charon.
cd "$SRC"
# Debian's patch 04 edits src/libtls/Makefile.am (it only drops libtls' tests, which are not built here);
# a Makefile.am newer than its Makefile.in makes make want automake, so keep the shipped Makefile.in.
find . -name Makefile.am | while read -r am; do
  in=${am%.am}.in
  if [ -f "$in" ] && [ "$am" -nt "$in" ]; then touch -r "$in" "$am"; fi
done
./configure --prefix="$PREFIX" --sysconfdir="$PREFIX/etc" \
  --with-ipsecdir="$PREFIX/libexec/ipsec" --with-piddir="$PREFIX/run" \
  --disable-gmp --enable-openssl --enable-curve25519 --enable-load-tester \
  --enable-vici --enable-swanctl --disable-stroke --disable-scepclient \
  --disable-kernel-libipsec --disable-systemd --disable-charon-systemd >"$CACHE/configure.log" 2>&1 ||
  { tail -30 "$CACHE/configure.log"; exit 1; }
make -j"$(nproc)" >"$CACHE/make.log" 2>&1 || { tail -40 "$CACHE/make.log"; exit 1; }
make install >"$CACHE/install.log" 2>&1 || { tail -40 "$CACHE/install.log"; exit 1; }
# The pid file and the load tester's control socket live here; each run mounts a private tmpfs over it
# (in its own mount namespace), so several instances never share it and nothing goes to the system's /run.
mkdir -p "$PREFIX/run"
touch "$STAMP"
echo "load-tester built in $(($(date +%s) - start)) s: $PREFIX"
