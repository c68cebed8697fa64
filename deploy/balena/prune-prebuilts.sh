#!/usr/bin/env bash
# Removes the prebuilt native binaries an image for one CPU architecture never loads.
#
#   prune-prebuilts.sh [--gpu none|cuda|vulkan] ARCH [NODE_MODULES]
#
# ARCH: the target, in balena's words (aarch64, amd64, armv7hf: %%BALENA_ARCH%%) or Node's (arm64, x64,
# arm). NODE_MODULES: default ./node_modules. --gpu: which accelerated builds to keep besides the CPU
# ones (default none).
#
# Why: npm installs every optional platform package whose os/cpu fields match, and node-llama-cpp
# declares its linux-arm64 and linux-armv7l packages for x64 hosts too (to cross-build), so an x64 image
# carries ~700 MB of CUDA, Vulkan and ARM builds it never loads, and an arm64 image the llama.node
# CUDA, Vulkan and Snapdragon builds. The packages pruned here:
#   @node-llama-cpp/<os>-<arch>[-cuda|-cuda-ext|-vulkan|-metal]   (node-llama-cpp)
#   @fugood/node-llama-<os>-<arch>[-cuda|-vulkan|-snapdragon], @fugood/node-llama-wasm   (llama.node)
#   @img/sharp-<os>-<arch>, @img/sharp-libvips-<os>-<arch>, @img/sharp-*wasm32   (sharp)
# Anything else in those scopes (e.g. @fugood/llama.node, @img/colour) is kept. The runtimes fall back
# to their CPU build when an accelerated one is missing (node-llama-cpp with build 'never', llama.node
# with the default lib_variant), so pruning never breaks a load, it only takes choices away.
set -euo pipefail

usage() {
  echo "usage: $0 [--gpu none|cuda|vulkan] ARCH [NODE_MODULES]" >&2
  exit 2
}

gpu=none
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu)
      [ $# -ge 2 ] || usage
      gpu="$2"
      shift 2
      ;;
    --gpu=*)
      gpu="${1#--gpu=}"
      shift
      ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) break ;;
  esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
case "$gpu" in none | cuda | vulkan) ;; *) usage ;; esac

# Node's process.arch for the target, and sharp's name for it.
case "$1" in
  aarch64 | arm64) arch=arm64 sharp_arch=arm64 ;;
  amd64 | x86_64 | x64) arch=x64 sharp_arch=x64 ;;
  armv7hf | armv7l | arm) arch=armv7l sharp_arch=arm ;;
  *)
    echo "prune-prebuilts: unknown architecture '$1' (aarch64, amd64, armv7hf, arm64, x64 or arm)" >&2
    exit 2
    ;;
esac
modules="${2:-node_modules}"
[ -d "$modules" ] || {
  echo "prune-prebuilts: no such folder: $modules" >&2
  exit 2
}
# llama.node calls 32-bit ARM 'arm' in its package names, node-llama-cpp 'armv7l'.
fugood_arch="$arch"
[ "$arch" = armv7l ] && fugood_arch=arm

keep_node_llama_cpp=("linux-$arch")
keep_fugood=("node-llama-linux-$fugood_arch")
case "$gpu" in
  cuda)
    keep_node_llama_cpp+=("linux-$arch-cuda" "linux-$arch-cuda-ext")
    keep_fugood+=("node-llama-linux-$fugood_arch-cuda")
    ;;
  vulkan)
    keep_node_llama_cpp+=("linux-$arch-vulkan")
    keep_fugood+=("node-llama-linux-$fugood_arch-vulkan")
    ;;
esac
keep_img=("sharp-linux-$sharp_arch" "sharp-libvips-linux-$sharp_arch")

# An ARCH that is not the one npm installed for would leave no CPU build behind: stop before removing
# anything rather than ship an image whose model never loads.
missing=()
if [ -d "$modules/@node-llama-cpp" ] && [ ! -d "$modules/@node-llama-cpp/linux-$arch" ]; then
  missing+=("@node-llama-cpp/linux-$arch")
fi
if [ -d "$modules/@fugood/llama.node" ] && [ "$arch" != armv7l ] && [ ! -d "$modules/@fugood/${keep_fugood[0]}" ]; then
  missing+=("@fugood/${keep_fugood[0]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "prune-prebuilts: the CPU build for $arch is not installed (${missing[*]}): was npm run for another architecture?" >&2
  exit 1
fi

kept=0
removed=0
# in_list NAME LIST...: whether NAME is one of LIST.
in_list() {
  local name="$1"
  shift
  local item
  for item in "$@"; do [ "$item" = "$name" ] && return 0; done
  return 1
}

# prune SCOPE_DIR PATTERN KEEP...: removes the entries of SCOPE_DIR matching the glob PATTERN that are not
# in KEEP.
prune() {
  local scope="$1" pattern="$2"
  shift 2
  local entry name
  for entry in "$scope"/$pattern; do
    [ -e "$entry" ] || continue
    name="${entry##*/}"
    if in_list "$name" "$@"; then
      kept=$((kept + 1))
    else
      rm -rf -- "$entry"
      removed=$((removed + 1))
      echo "prune-prebuilts: removed ${entry#"$modules"/}"
    fi
  done
}

# Nested copies (a package's own node_modules) are pruned the same way. The list is read before anything
# is removed, so find never walks a folder while it goes away.
mapfile -d '' scopes < <(find "$modules" -type d \( -name '@node-llama-cpp' -o -name '@fugood' -o -name '@img' \) -print0)
for scope in "${scopes[@]}"; do
  case "${scope##*/}" in
    @node-llama-cpp) prune "$scope" '*' "${keep_node_llama_cpp[@]}" ;;
    @fugood) prune "$scope" 'node-llama-*' "${keep_fugood[@]}" ;;
    @img) prune "$scope" 'sharp-*' "${keep_img[@]}" ;;
  esac
done

echo "prune-prebuilts: $arch, gpu $gpu: kept $kept, removed $removed"

