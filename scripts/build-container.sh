#!/usr/bin/env bash
# Builds shardgate's container image (contrib/container/Containerfile): a
# static musl binary on `scratch`, no registry needed.
#
#   scripts/build-container.sh [TAG]      # default localhost/shardgate:latest
#
# PROFILE=release|dev (default release; the test uses dev, which builds
# faster), CONTAINER_TOOL=podman|buildah|docker (default podman),
# CARGO_TARGET_DIR as cargo uses it. `make container` runs this.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-localhost/shardgate:latest}
profile=${PROFILE:-release}
tool=${CONTAINER_TOOL:-podman}
triple=x86_64-unknown-linux-musl

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$triple"; then
    rustup target add "$triple"
fi
# mimalloc's C code is compiled with musl-gcc (Debian's musl-tools).
command -v musl-gcc >/dev/null || {
    echo "error: musl-gcc is missing: sudo apt-get install -y musl-tools (or run make deps)" >&2
    exit 1
}
cargo build --locked --profile "$profile" --target "$triple" -p shardgate-bin

target_dir=${CARGO_TARGET_DIR:-target}
case $profile in
    dev) out=debug ;;
    *) out=$profile ;;
esac
context="$target_dir/container-context-$profile"
rm -rf "$context"
mkdir -p "$context"
cp "$target_dir/$triple/$out/shardgate" "$context/shardgate"
if [[ $profile == release ]]; then
    strip --strip-debug "$context/shardgate"
fi
cp contrib/container/shardgate.yml "$context/shardgate.yml"

case $tool in
    buildah) buildah bud --quiet -f contrib/container/Containerfile -t "$tag" "$context" ;;
    *) "$tool" build --quiet -f contrib/container/Containerfile -t "$tag" "$context" ;;
esac
echo "built $tag"
