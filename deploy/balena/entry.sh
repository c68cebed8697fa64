#!/bin/sh
# Entrypoint of the outpost service on balena: gives the gateway a name that survives container updates,
# then runs the command (CMD: node dist/cli/main.js start).
#
# Outpost names itself after the hostname by default (outpost/<gatewayId>/... topics, Home Assistant
# device ids), and a container's hostname changes whenever balena recreates it. The device UUID does
# not. A device or fleet variable OUTPOST_GATEWAY_ID still wins.
set -eu

if [ -z "${OUTPOST_GATEWAY_ID:-}" ] && [ -n "${BALENA_DEVICE_UUID:-}" ]; then
  OUTPOST_GATEWAY_ID="$BALENA_DEVICE_UUID"
  export OUTPOST_GATEWAY_ID
fi

exec "$@"
