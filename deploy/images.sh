#!/usr/bin/env bash
# Builds every image of the fleet from a local Debian base, with no registry:
#   images.sh [--no-cache] [NAME...]      (default: every image; FORCE=1 is --no-cache)
# Images, all tagged addon-fleet/<name>:latest:
#   base           Debian bookworm minbase (debootstrap), imported with `docker import`
#   services       every fleet-* binary (cargo build --release --locked --bins on this host),
#                  redis-server, ca-certificates, user fleet (uid 10001); HEALTHCHECK: the
#                  container's binary's own `probe`
#   postgres       PostgreSQL 15, pgextwlist and the whitelisted extensions (deploy/postgresql)
#   mariadb        MariaDB standing in for MySQL 8 (deploy/mysql)
#   mongo          SecantusDB, a MongoDB-wire STAND-IN for tests and demos (deploy/mongodb)
#   slapd          OpenLDAP (deploy/ldap)
#   mail           Postfix + Dovecot (deploy/mail)
#   coturn         coturn (deploy/turn)
#   docker-engine  Debian's dockerd (deploy/docker-proxy)
#   prometheus     Debian's prometheus (deploy/prometheus)
# Every backend image runs the same deploy/<backend>/cluster.sh as `make up` and the tests.
#
# Talks to the engine the docker client is pointed at (DOCKER_HOST). Builds with the classic
# builder and `--network host` (apt-get and pip reach the network; the containers do not need
# to). Each build context is staged in a temporary directory holding only what the Dockerfile
# copies (never target/).
# Cache: an image is rebuilt only when its inputs changed. Its inputs' hash (its staged
# context, Dockerfile included, for `services` the binaries; and the base's hash) is kept in
# the label org.addon-fleet.inputs and compared first. The base's root file system is kept as
# a tarball in $FLEET_IMAGE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/addon-fleet; delete it
# to refresh the base), and every image built is saved there too (docker save, as
# images/<name>-<inputs>.tar; FLEET_IMAGE_SAVE=0 does not) and loaded into an engine that
# lacks it: a new engine (the compose test's) gets every unchanged image in seconds.
# FLEET_BUILD_CA_FILE (default: PIP_CERT, pip's own setting) is a CA bundle pip trusts while
# building the mongo image, for networks whose HTTPS goes through an intercepting proxy; it is
# one of that image's inputs.
# Needs root for debootstrap (the first time only) and cargo for `services`. Prints each
# image's build time (or "cached", or its load time) and size at the end.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${FLEET_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/addon-fleet}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
label=org.addon-fleet.inputs
all=(base services postgres mariadb mongo slapd mail coturn docker-engine prometheus)

die() { echo "images.sh: $*" >&2; exit 1; }
say() { echo "images.sh: $*" >&2; }

force=${FORCE:-0}
save=${FLEET_IMAGE_SAVE:-1}
wanted=()
for arg in "$@"; do
    case $arg in
    --no-cache) force=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $arg" ;;
    *) wanted+=("$arg") ;;
    esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=("${all[@]}")
for name in "${wanted[@]}"; do
    case " ${all[*]} " in *" $name "*) ;; *) die "no image $name (images: ${all[*]})" ;; esac
done
command -v docker >/dev/null || die "no docker client (deploy/install-deps.sh installs docker.io)"
docker version >/dev/null 2>&1 || die "no Docker Engine answers (DOCKER_HOST=${DOCKER_HOST:-unset})"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
report=()

image_label() { docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
human() { numfmt --to=iec-i --suffix=B "$1" 2>/dev/null || echo "${1}B"; }
record() { # NAME SECONDS|cached
    local size
    size=$(docker image inspect -f '{{.Size}}' "addon-fleet/$1:latest")
    report+=("$(printf '%-14s %-10s %s' "$1" "$2" "$(human "$size")")")
}

# The base: debootstrap once into the cache (a tarball of the root file system, made
# atomically), then `docker import` into every engine that lacks it.
build_base() {
    local tarball=$cache/$suite-minbase.tar hash started=$SECONDS
    mkdir -p "$cache"
    if [ ! -s "$tarball" ]; then
        [ "$(id -u)" = 0 ] || die "debootstrap needs root (once: the base is cached in $tarball)"
        command -v debootstrap >/dev/null || die "no debootstrap (deploy/install-deps.sh installs it)"
        say "debootstrap --variant=minbase $suite (about a minute, once)"
        local root=$work/rootfs
        debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
            || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
        # No service starts on package installation in an image; no apt leftovers.
        printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
        chmod 755 "$root/usr/sbin/policy-rc.d"
        printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
            "$mirror" "$suite" "$mirror" "$suite" "$suite" >"$root/etc/apt/sources.list"
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/* \
            "$root/debootstrap"
        tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        rm -rf "$root"
        say "base root file system cached in $tarball ($((SECONDS - started)) s)"
    fi
    hash=$(sha256sum "$tarball" | cut -c1-32)
    if [ "$force" != 1 ] && [ "$(image_label addon-fleet/base:latest)" = "$hash" ]; then
        record base cached
        return
    fi
    docker import --change "LABEL $label=$hash" --change 'CMD ["bash"]' \
        "$tarball" addon-fleet/base:latest >/dev/null
    record base "$((SECONDS - started))s"
}

# Copies repository paths into the staged context at the same relative paths.
stage() { # CONTEXT PATH...
    local context=$1 path
    shift
    for path in "$@"; do
        [ -e "$repo/$path" ] || die "missing $path"
        mkdir -p "$context/$(dirname "$path")"
        cp -a "$repo/$path" "$context/$path"
    done
}

# Builds addon-fleet/NAME:latest from CONTEXT/DOCKERFILE unless its inputs are unchanged: the
# same image in this engine is kept, one saved in the cache is loaded, and anything else is
# built, then saved in the cache.
build_staged() { # NAME CONTEXT DOCKERFILE
    local name=$1 context=$2 dockerfile=$3 hash started base_inputs old_id saved
    base_inputs=$(image_label addon-fleet/base:latest)
    [ -n "$base_inputs" ] || die "no addon-fleet/base:latest in this engine (images.sh base)"
    hash=$( (cd "$context" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
        find . -type f -perm /111 | LC_ALL=C sort
        echo "$base_inputs") | sha256sum | cut -c1-32)
    if [ "$force" != 1 ] && [ "$(image_label "addon-fleet/$name:latest")" = "$hash" ]; then
        record "$name" cached
        return
    fi
    old_id=$(image_id "addon-fleet/$name:latest")
    saved=$cache/images/$name-$hash.tar
    started=$SECONDS
    if [ "$force" != 1 ] && [ "$save" = 1 ] && [ -s "$saved" ]; then
        docker load -q -i "$saved" >/dev/null || die "cannot load $saved (delete it to rebuild)"
        [ "$(image_label "addon-fleet/$name:latest")" = "$hash" ] || die "$saved is not addon-fleet/$name with inputs $hash"
        record "$name" "load $((SECONDS - started))s"
    else
        say "building addon-fleet/$name"
        DOCKER_BUILDKIT=0 docker build --network host --force-rm --label "$label=$hash" \
            -f "$context/$dockerfile" -t "addon-fleet/$name:latest" "$context" >"$work/$name.log" 2>&1 \
            || { tail -40 "$work/$name.log" >&2; die "building addon-fleet/$name failed"; }
        record "$name" "$((SECONDS - started))s"
        if [ "$save" = 1 ]; then
            mkdir -p "$cache/images"
            docker save -o "$saved.tmp.$$" "addon-fleet/$name:latest" && mv "$saved.tmp.$$" "$saved"
            find "$cache/images" -maxdepth 1 -name "$name-*.tar" ! -name "${saved##*/}" -delete
        fi
    fi
    # The previous version, unless a container still uses it.
    if [ -n "$old_id" ] && [ "$old_id" != "$(image_id "addon-fleet/$name:latest")" ]; then
        docker rmi "$old_id" >/dev/null 2>&1 || true
    fi
}

build_services() {
    local context=$work/services bin
    say "cargo build --release --locked --bins"
    (cd "$repo" && cargo build --release --locked --bins -q) || die "cargo build failed"
    stage "$context" deploy/Dockerfile
    mkdir -p "$context/bin"
    for bin in "$repo"/target/release/fleet-*; do
        [ -f "$bin" ] && [ -x "$bin" ] || continue
        cp "$bin" "$context/bin/"
    done
    [ -n "$(ls "$context/bin")" ] || die "no fleet-* binary in target/release"
    build_staged services "$context" deploy/Dockerfile
}

build_backend() { # NAME DIR [EXTRA PATH]...
    local name=$1 dir=$2 context=$work/$1
    shift 2
    stage "$context" "deploy/$dir" "$@"
    build_staged "$name" "$context" "deploy/$dir/Dockerfile"
}

for name in "${wanted[@]}"; do
    if [ "$name" != base ] && [ -z "$(image_id addon-fleet/base:latest)" ]; then build_base; fi
    case $name in
    base) build_base ;;
    services) build_services ;;
    postgres) build_backend postgres postgresql deploy/first-start.sh services/postgresql/extension-whitelist.txt ;;
    mariadb) build_backend mariadb mysql deploy/first-start.sh ;;
    mongo)
        mkdir -p "$work/mongo"
        ca=${FLEET_BUILD_CA_FILE:-${PIP_CERT:-}}
        if [ -n "$ca" ]; then cp "$ca" "$work/mongo/build-ca.pem"; else : >"$work/mongo/build-ca.pem"; fi
        build_backend mongo mongodb deploy/first-start.sh
        ;;
    slapd) build_backend slapd ldap ;;
    mail) build_backend mail mail ;;
    coturn) build_backend coturn turn ;;
    docker-engine) build_backend docker-engine docker-proxy ;;
    prometheus) build_backend prometheus prometheus ;;
    esac
done

echo "image          build      size"
printf '%s\n' "${report[@]}"
