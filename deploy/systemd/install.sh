#!/usr/bin/env bash
# Installs Outpost as a systemd service: the system user, /opt/outpost, /var/lib/outpost, /etc/outpost and
# the unit. Safe to run again (an upgrade): what is already right is left alone, configuration an operator
# may have edited is never overwritten, and the app is replaced as a whole only when it differs.
set -euo pipefail
# Folders this creates (/opt, /opt/outpost) must be traversable by the service whatever root's umask is.
umask 022

PROG=install.sh
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
NAME=outpost
readonly PROG HERE NAME

usage() {
  cat <<EOF
Usage: $PROG [--root DIR] [--source DIR] [--no-enable] [--with-mosquitto]

Installs the Outpost service (deploy/systemd/outpost.service) and the app it runs.

  --root DIR        install into DIR instead of / (a mounted board image, or a throwaway folder for tests).
                    The host's own users and services are never touched then: the outpost user is added to
                    DIR/etc/passwd and DIR/etc/group (useradd --prefix) only where both files exist, otherwise
                    it is skipped with a message and the files stay owned by the user running this script.
  --source DIR      the built app: dist/, package.json, package-lock.json and node_modules/ (production
                    dependencies; when absent, \`npm ci --omit=dev\` runs in the installed copy, which needs
                    the network). Default: this repository ($(cd "$HERE/../.." && pwd -P)).
  --no-enable       install only: print the systemctl commands instead of running them.
  --with-mosquitto  the gateway uses the board's mosquitto (apt-get install mosquitto) instead of its embedded
                    broker: /etc/mosquitto/conf.d/outpost.conf and a drop-in that orders Outpost after it.

systemctl runs only when --root is /, systemd is PID 1 and --no-enable is absent; otherwise the commands are
printed. Exit codes: 0 done, 1 a step failed, 2 bad usage.
EOF
}

die() {
  printf '%s: %s\n' "$PROG" "$*" >&2
  exit 2
}
say() { printf '%s\n' "$*"; }

root=/
source_dir="$HERE/../.."
enable=1
with_mosquitto=0
while [ $# -gt 0 ]; do
  case "$1" in
  --root | --source)
    if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a folder"; fi
    if [ "$1" = --root ]; then root=$2; else source_dir=$2; fi
    shift 2
    ;;
  --root=*) root=${1#--root=} && shift ;;
  --source=*) source_dir=${1#--source=} && shift ;;
  --no-enable) enable=0 && shift ;;
  --with-mosquitto) with_mosquitto=1 && shift ;;
  -h | --help) usage && exit 0 ;;
  *) die "unknown option '$1' (see --help)" ;;
  esac
done

# --- inputs ---------------------------------------------------------------------------------------------------
[ -d "$root" ] || die "--root $root: no such folder"
root=$(cd "$root" && pwd -P)
[ -d "$source_dir" ] || die "--source $source_dir: no such folder"
source_dir=$(cd "$source_dir" && pwd -P)
[ -f "$source_dir/dist/cli/main.js" ] ||
  die "--source $source_dir: no dist/cli/main.js (build the app first: npm ci && npm run build)"
[ -f "$source_dir/package.json" ] || die "--source $source_dir: no package.json"
for file in outpost.service outpost.yaml outpost.env.example outpost-mosquitto.conf mosquitto.conf.d/outpost.conf; do
  [ -f "$HERE/$file" ] || die "$HERE/$file is missing: run the install.sh of a complete checkout"
done
if [ ! -d "$source_dir/node_modules" ]; then
  [ -f "$source_dir/package-lock.json" ] || die "--source $source_dir: neither node_modules/ nor package-lock.json"
fi
is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1
[ "$root" != / ] || [ $is_root -eq 1 ] || die "installing into / needs root (sudo $0 ...)"

# A path inside the target root.
at() { printf '%s%s' "${root%/}" "$1"; }

changed_app=0    # the app or the unit changed: a running service should restart
changed_broker=0 # mosquitto's configuration was written
say "Installing Outpost into $root from $source_dir"

# --- the system user ------------------------------------------------------------------------------------------
uid='' gid=''
account_ids() {
  if [ "$root" = / ]; then
    uid=$(id -u "$NAME" 2>/dev/null || true)
    gid=$(getent group "$NAME" | cut -d: -f3 || true)
  else
    uid=$(awk -F: -v n="$NAME" '$1 == n { print $3 }' "$(at /etc/passwd)")
    gid=$(awk -F: -v n="$NAME" '$1 == n { print $3 }' "$(at /etc/group)")
  fi
}
# useradd/groupadd either on the host or, with --prefix, on the target's own files (no chroot needed).
add_account() {
  local prefix=()
  [ "$root" = / ] || prefix=(--prefix "$root")
  if [ -z "$gid" ]; then
    groupadd "${prefix[@]}" --system "$NAME"
    say "user: created group $NAME"
  fi
  if [ -z "$uid" ]; then
    useradd "${prefix[@]}" --system --gid "$NAME" --home-dir /var/lib/outpost --no-create-home \
      --shell /usr/sbin/nologin --comment 'Outpost gateway' "$NAME"
    say "user: created system user $NAME (home /var/lib/outpost, no login)"
  fi
  account_ids
}
if [ "$root" = / ]; then
  account_ids
  if [ -n "$uid" ] && [ -n "$gid" ]; then say "user: $NAME exists (uid $uid)"; else add_account; fi
elif [ ! -f "$(at /etc/passwd)" ] || [ ! -f "$(at /etc/group)" ]; then
  say "user: skipped, $root has no etc/passwd and etc/group (not a system image); files stay owned by $(id -un)"
elif [ $is_root -eq 0 ]; then
  say "user: skipped, adding $NAME to $root/etc/passwd needs root; files stay owned by $(id -un)"
elif [[ "$(useradd --help 2>&1 || true)" != *--prefix* ]]; then
  say "user: skipped, this useradd has no --prefix; add $NAME inside the image; files stay owned by $(id -un)"
else
  account_ids
  if [ -n "$uid" ] && [ -n "$gid" ]; then say "user: $NAME exists in $root (uid $uid)"; else add_account; fi
fi
if [ $is_root -eq 0 ]; then uid='' gid=''; fi # chown needs root: keep the runner's ownership

# --- folders --------------------------------------------------------------------------------------------------
# ensure_dir PATH MODE OWNER GROUP: creates or corrects PATH (not its contents); '' owner/group: leave them.
ensure_dir() {
  local path=$1 mode=$2 owner=$3 group=$4 verb=created
  if [ -d "$path" ]; then
    local have_mode have_owner have_group
    read -r have_mode have_owner have_group < <(stat -c '%a %u %g' "$path")
    [ "$have_mode" != "$mode" ] || [ "${owner:-$have_owner}" != "$have_owner" ] ||
      [ "${group:-$have_group}" != "$have_group" ] || return 0
    verb=corrected
  fi
  mkdir -p "$path"
  chmod "$mode" "$path"
  [ -z "$owner" ] || chown "$owner" "$path"
  [ -z "$group" ] || chgrp "$group" "$path"
  say "folder: $verb $path (mode $mode${owner:+, owner $owner}${group:+, group $group})"
}
# Data: the service's one writable folder (the unit's StateDirectory= would also create it at start).
ensure_dir "$(at /var/lib/outpost)" 750 "$uid" "$gid"
# Configuration: root's, readable by the service's group (the env file may hold secrets).
ensure_dir "$(at /etc/outpost)" 750 "${gid:+0}" "$gid"

# --- the app --------------------------------------------------------------------------------------------------
app=$(at /opt/outpost)
items=(dist package.json)
[ -f "$source_dir/package-lock.json" ] && items+=(package-lock.json)
[ -d "$source_dir/node_modules" ] && items+=(node_modules)
# The installed copy is the same when every item matches and it has nothing else (a node_modules that npm
# installed here counts as part of it when the source has none).
app_is_current() {
  [ -d "$app" ] || return 1
  local item extra
  for item in "${items[@]}"; do
    diff -rq --no-dereference "$source_dir/$item" "$app/$item" >/dev/null 2>&1 || return 1
  done
  extra=$(find "$app" -mindepth 1 -maxdepth 1 -printf '%f\n' | grep -vxF -e dist -e package.json \
    -e package-lock.json -e node_modules || true)
  [ -z "$extra" ] && { [ -d "$source_dir/node_modules" ] || [ -d "$app/node_modules" ]; }
}
if [ "$source_dir" = "$app" ]; then
  say "app: $app is the source itself; nothing to copy"
elif app_is_current; then
  say "app: unchanged $app"
else
  # Built next to the old copy, then swapped in with two renames: never a half-copied app.
  stage=$(at /opt/.outpost.new)
  old=$(at /opt/.outpost.old)
  rm -rf "$stage" "$old"
  mkdir -p "$stage"
  for item in "${items[@]}"; do cp -a "$source_dir/$item" "$stage/"; done
  if [ ! -d "$source_dir/node_modules" ]; then
    if [ -d "$app/node_modules" ] && cmp -s "$source_dir/package-lock.json" "$app/package-lock.json"; then
      cp -a "$app/node_modules" "$stage/"
    else
      command -v npm >/dev/null || die "--source has no node_modules and npm is not installed to fetch them"
      say "app: npm ci --omit=dev in $stage"
      (cd "$stage" && npm ci --omit=dev --no-audit --no-fund)
    fi
  fi
  # Root's and read-only to the service: the daemon must not be able to change its own code.
  [ $is_root -eq 0 ] || chown -R 0:0 "$stage"
  chmod -R u+rwX,go+rX,go-w "$stage"
  [ ! -d "$app" ] || mv "$app" "$old"
  mv "$stage" "$app"
  rm -rf "$old"
  changed_app=1
  say "app: installed $app"
fi

# --- files ----------------------------------------------------------------------------------------------------
# put_config SRC DEST MODE GROUP: an operator's file, written once and never overwritten; sets `wrote`.
put_config() {
  local src=$1 dest=$2 mode=$3 group=$4
  wrote=0
  if [ -e "$dest" ]; then
    say "config: kept $dest"
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  install -m "$mode" "$src" "$dest"
  [ -z "$group" ] || chown "0:$group" "$dest"
  wrote=1
  say "config: wrote $dest"
}
# put_managed SRC DEST: ours, replaced whenever it differs; sets `wrote`.
put_managed() {
  local src=$1 dest=$2
  wrote=0
  if cmp -s "$src" "$dest"; then
    say "unit: unchanged $dest"
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  install -m 0644 "$src" "$dest"
  wrote=1
  say "unit: installed $dest"
}
wrote=0
# Read by the service's group only: the env file may hold passwords and the API token.
put_config "$HERE/outpost.yaml" "$(at /etc/outpost/outpost.yaml)" 0640 "$gid"
put_config "$HERE/outpost.env.example" "$(at /etc/outpost/outpost.env)" 0640 "$gid"
put_managed "$HERE/outpost.service" "$(at /etc/systemd/system/outpost.service)"
changed_app=$wrote
if [ $with_mosquitto -eq 1 ]; then
  put_managed "$HERE/outpost-mosquitto.conf" "$(at /etc/systemd/system/outpost.service.d/mosquitto.conf)"
  [ $wrote -eq 0 ] || changed_app=1
  # World-readable like the stock configuration: mosquitto reads conf.d after dropping root.
  put_config "$HERE/mosquitto.conf.d/outpost.conf" "$(at /etc/mosquitto/conf.d/outpost.conf)" 0644 ''
  changed_broker=$wrote
  [ -x "$(at /usr/sbin/mosquitto)" ] || say "warning: mosquitto is not installed in $root (apt-get install mosquitto)"
fi

# --- checks of the target -------------------------------------------------------------------------------------
node_bin=$(at /usr/bin/node)
if [ ! -x "$node_bin" ]; then
  say "warning: $node_bin is missing: the unit runs /usr/bin/node (Node 20; a drop-in can change ExecStart)"
elif [ "$root" = / ]; then
  major=$("$node_bin" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$major" -ge 20 ] || say "warning: /usr/bin/node is Node $major; Outpost needs Node 20.11 or later"
fi
if [ -f "$(at /etc/group)" ] && ! grep -q '^audio:' "$(at /etc/group)"; then
  say "warning: no audio group in $root/etc/group: the unit's SupplementaryGroups=audio fails the start"
fi

# --- systemd --------------------------------------------------------------------------------------------------
units=()
[ $with_mosquitto -eq 0 ] || units+=(mosquitto.service)
units+=(outpost.service)
if [ "$root" = / ]; then
  commands=("systemctl daemon-reload" "systemctl enable --now ${units[*]}")
  # enable --now leaves a running service on its old code and configuration: restart what changed.
  [ $changed_broker -eq 0 ] || commands+=("systemctl try-restart mosquitto.service")
  [ $changed_app -eq 0 ] || commands+=("systemctl try-restart outpost.service")
else
  # An image: enabled offline, started at its first boot.
  commands=("systemctl --root=$root enable ${units[*]}")
fi
why=''
if [ $enable -eq 0 ]; then
  why='--no-enable'
elif [ "$root" != / ]; then
  why="--root is not /"
elif [ ! -d /run/systemd/system ] || [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ]; then
  why="systemd is not PID 1 here"
fi
if [ -n "$why" ]; then
  say "systemd: not run ($why); would run:"
  for command in "${commands[@]}"; do say "  $command"; done
else
  for command in "${commands[@]}"; do
    say "systemd: $command"
    $command
  done
  say "Outpost is running: systemctl status outpost; journalctl -u outpost -f"
fi
say "done"
