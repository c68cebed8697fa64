#!/bin/sh
# Entrypoint of the mosquitto service: writes the LAN listener from balena variables, then starts the
# stock entrypoint of the eclipse-mosquitto image with the command.
#
#   MOSQUITTO_LAN_USERNAME, MOSQUITTO_LAN_PASSWORD  the one account sensors on the LAN log in with
#   MOSQUITTO_LAN_ANONYMOUS=true                    or: anyone on the LAN may connect (lab use)
#
# Neither set: no LAN listener. The names do not start with OUTPOST_ on purpose: a fleet variable for all
# services reaches the outpost service too, and Outpost refuses unknown OUTPOST_* variables.
# MOSQUITTO_CONF_D (default /mosquitto/config/conf.d) is where the listener file goes.
set -eu

conf_d="${MOSQUITTO_CONF_D:-/mosquitto/config/conf.d}"
lan_port=1884
mkdir -p "$conf_d"
rm -f "$conf_d/lan.conf" "$conf_d/passwd"

user="${MOSQUITTO_LAN_USERNAME:-}"
password="${MOSQUITTO_LAN_PASSWORD:-}"
anonymous="${MOSQUITTO_LAN_ANONYMOUS:-false}"

if [ -n "$user" ] && [ -n "$password" ]; then
  # -b takes the password as an argument; it exists only inside this container, for this instant.
  mosquitto_passwd -c -b "$conf_d/passwd" "$user" "$password" >/dev/null
  chmod 0700 "$conf_d/passwd"
  # mosquitto reads it after dropping root for its own user.
  if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then chown mosquitto:mosquitto "$conf_d/passwd"; fi
  printf 'listener %s\nallow_anonymous false\npassword_file %s\n' "$lan_port" "$conf_d/passwd" >"$conf_d/lan.conf"
  echo "lan-listener: LAN listener on port $lan_port for user $user"
elif [ "$anonymous" = true ]; then
  printf 'listener %s\nallow_anonymous true\n' "$lan_port" >"$conf_d/lan.conf"
  echo "lan-listener: LAN listener on port $lan_port WITHOUT authentication (MOSQUITTO_LAN_ANONYMOUS=true)"
else
  if [ -n "$user" ] || [ -n "$password" ]; then
    echo "lan-listener: MOSQUITTO_LAN_USERNAME and MOSQUITTO_LAN_PASSWORD must both be set" >&2
  fi
  echo "lan-listener: no LAN listener (set MOSQUITTO_LAN_USERNAME and MOSQUITTO_LAN_PASSWORD)"
fi

[ $# -gt 0 ] || exit 0
exec /docker-entrypoint.sh "$@"
