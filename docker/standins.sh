#!/usr/bin/env bash
# Build local stand-ins for the base images docker/Dockerfile and docker/compose.yaml
# name (python:3.11-slim, postgres:15), for a machine whose Docker engine cannot pull
# them (no route to a container registry) but can reach Debian's package mirror.
#
# Each stand-in is tagged with the real image's name so that the Dockerfile and the
# compose file stay exactly what production uses; each carries the label
# org.smsreg.standin, so `docker image inspect` tells a stand-in from the real image.
# An image that is already present (pulled, or built by an earlier run) is left alone;
# `docker image inspect -f '{{ index .Config.Labels "org.smsreg.standin" }}' IMAGE`
# prints what a stand-in is, and nothing for the real image.
#
#   docker/standins.sh            build whatever is missing
#   STANDIN_DIR=/path docker/standins.sh   where the Debian root file system is kept
#
# Needs root (debootstrap), debootstrap, and a running Docker engine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
dir=${STANDIN_DIR:-/var/tmp/smsreg-standins}
base=smsreg-standin/debian:$suite

say() { printf '\n*** stand-in: %s\n' "$*" >&2; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
    have "$base" && return
    command -v debootstrap >/dev/null || { say "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
    if [ ! -x "$dir/$suite/usr/bin/apt-get" ]; then
        say "debootstrap of Debian $suite (minbase) into $dir/$suite"
        rm -rf "${dir:?}/${suite:?}"
        mkdir -p "$dir"
        debootstrap --variant=minbase "$suite" "$dir/$suite" "$mirror" >"$dir/debootstrap.log" 2>&1 \
            || { tail -20 "$dir/debootstrap.log" >&2; exit 1; }
    fi
    say "importing $dir/$suite as $base"
    # Without debootstrap's package cache and lists: apt fetches fresh lists when it runs.
    tar -C "$dir/$suite" --exclude='./var/cache/apt/*' --exclude='./var/lib/apt/lists/*' -c . \
        | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$base" >/dev/null
}

standin() {  # standin IMAGE DOCKERFILE
    local image=$1 dockerfile=$2
    have "$image" && return  # pulled before, or a stand-in built by an earlier run
    if docker pull "$image" >/dev/null 2>&1; then
        return
    fi
    say "$image cannot be pulled here: building a LOCAL STAND-IN from Debian $suite"
    build_base
    docker build --pull=false -q -t "$image" -f "$here/standins/$dockerfile" "$here/standins" >/dev/null
    say "built $image (stand-in: $(docker image inspect -f '{{ index .Config.Labels "org.smsreg.standin" }}' "$image"))"
}

standin python:3.11-slim python.Dockerfile
standin postgres:15 postgres.Dockerfile
