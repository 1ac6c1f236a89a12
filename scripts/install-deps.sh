#!/usr/bin/env bash
# Installs what shardgate's tests, demo and benchmark need, only where
# missing: Debian's redis-server, redis-sentinel, redis-tools (redis-cli,
# redis-benchmark), nutcracker (twemproxy, the reference peer), chromium and
# chromium-driver (the status page's browser test), prometheus (the metrics,
# alert rules and dashboard tests run the real Prometheus and promtool),
# nodejs and npm (the ioredis and node-redis suites), podman, runc and
# musl-tools (the container image: a static musl build on `scratch`);
# redis-py from PyPI (a real client library the tests drive); the rustfmt
# and clippy components and the x86_64-unknown-linux-musl target; cargo-deb
# from crates.io (the .deb).
# Runs `apt-get update` once, and only when a package is missing.
set -euo pipefail

packages=(redis-server redis-sentinel redis-tools nutcracker chromium chromium-driver prometheus
          podman runc musl-tools "$@")
missing=()
# Node.js and npm run the ioredis and node-redis suites (tests/node; the
# clients want Node.js 20 or newer). Many machines have them from
# elsewhere (NodeSource's nodejs bundles npm), so look for the commands.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        echo "error: need root (or sudo) to run: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's packages start system services where an init system runs; the
# tests start their own servers on free ports, so those are not needed.
for service in redis-server redis-sentinel nutcracker prometheus; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
        echo "note: the system's $service service is running; tests use their own ports and do not need it"
    fi
done

if ! python3 -c "import redis" 2>/dev/null; then
    echo "installing redis-py (PyPI)"
    python3 -m pip install --quiet --disable-pip-version-check redis
fi

if command -v rustup >/dev/null; then
    for component in rustfmt clippy; do
        if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
            rustup component add "$component"
        fi
    done
    if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        rustup target add x86_64-unknown-linux-musl
    fi
fi

# Pinned: tests/packaging.rs packages the dev build, which cargo-deb 3.8
# accepts (with a warning) and later versions may refuse.
cargo_deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $cargo_deb_version"; then
    echo "installing cargo-deb $cargo_deb_version (crates.io)"
    cargo install --quiet --locked cargo-deb --version "$cargo_deb_version"
fi
