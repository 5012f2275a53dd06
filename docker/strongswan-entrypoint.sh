#!/bin/sh
# Starts charon in the foreground of this container and loads /etc/swanctl/swanctl.conf once vici is up.
set -eu
if [ -n "${LAN_ADDR:-}" ]; then ip addr replace "$LAN_ADDR" dev lo; fi
/usr/lib/ipsec/charon &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
i=0
until swanctl --stats >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then echo "charon did not start" >&2; exit 1; fi
  sleep 0.1
done
swanctl --load-all
wait "$pid"
