#!/bin/sh
# twinsec container entry point. LAN_ADDR (CIDR, optional) goes on lo: the lab has no LAN hosts behind
# the gateway, so the gateway itself owns an address inside localSubnets for the health-check source
# and for pinging across the tunnels. exec keeps twinsecd as PID 1, so `docker stop` (SIGTERM)
# reaches it and it sends its IKE DELETEs before exiting.
set -eu
if [ -n "${LAN_ADDR:-}" ]; then ip addr replace "$LAN_ADDR" dev lo; fi
exec node /opt/twinsec/dist/src/cli/twinsecd.js "$@"
