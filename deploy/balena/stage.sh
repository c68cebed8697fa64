#!/usr/bin/env bash
# Assembles the folder `balena push` sends to the builders:
#
#   OUT_DIR/docker-compose.yml   this folder's docker-compose.yml (with --jetson: docker-compose.jetson.yml)
#   OUT_DIR/balena.yml           fleet metadata, read from the project root
#   OUT_DIR/outpost/             the repository: files git tracks plus new ones it does not ignore
#
#   deploy/balena/stage.sh [--jetson] OUT_DIR
#   balena push <fleet> --source OUT_DIR
#
# Why a staging folder: balena reads docker-compose.yml and balena.yml at the root of the pushed folder
# and builds only from folders below it, while the image needs the whole repository as build context.
# Copying the files git knows keeps node_modules, dist and data out of the upload. OUT_DIR must not
# exist yet, or be empty.
set -euo pipefail

usage() {
  echo "usage: $0 [--jetson] OUT_DIR" >&2
  exit 2
}

compose=docker-compose.yml
if [ "${1:-}" = --jetson ]; then
  compose=docker-compose.jetson.yml
  shift
fi
[ $# -eq 1 ] || usage
out="$1"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

out="$(realpath -m "$out")"
case "$out/" in
  "$root"/*)
    echo "stage: $out is inside the repository; choose a folder outside it" >&2
    exit 1
    ;;
esac
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then
  echo "stage: $out exists and is not empty" >&2
  exit 1
fi
mkdir -p "$out/outpost"

cp "$here/$compose" "$out/docker-compose.yml"
cp "$here/balena.yml" "$out/balena.yml"

# The file list: git's view (read-only commands), else everything but build output and local state.
cd "$root"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Files deleted in the working tree but still in the index are skipped.
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' file; do
      if [ -f "$file" ]; then printf '%s\0' "$file"; fi
    done |
    tar --null --files-from=- -cf - | tar -xf - -C "$out/outpost"
else
  tar --exclude=./node_modules --exclude=./dist --exclude=./data --exclude=./.git -cf - . |
    tar -xf - -C "$out/outpost"
fi

echo "stage: $out is ready ($compose); next: balena push <fleet> --source $out"
