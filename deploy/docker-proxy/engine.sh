#!/usr/bin/env bash
# A private Docker Engine (Debian's dockerd, package docker.io 20.10) for the docker addon,
# configured in one place for `make up`, the compose file and the Rust test kit
# (shared/src/testkit/docker.rs); the package's own docker.service and docker.socket are never
# used (deploy/install-deps.sh disables them):
#   engine.sh run DIR                 dockerd in the foreground until TERM or INT, logging to
#                                     stdout and stderr, with all its state under DIR:
#                                     DIR/root (data root: images, containers, volumes),
#                                     DIR/exec (exec root: containerd's state, network
#                                     namespaces), the API on DIR/docker.sock, DIR/docker.pid
#   engine.sh wait DIR [SECONDS]      until the engine at DIR answers `docker version` (default
#                                     60 s; exits 1 if it does not)
#   engine.sh import-busybox DIR [IMAGE]
#                                     imports IMAGE (default fleet-test/busybox:latest) into the
#                                     running engine at DIR: /bin/busybox of busybox-static with
#                                     every applet linked, a minimal /etc/passwd and /etc/group,
#                                     /tmp; nothing when IMAGE is there already (no image can be
#                                     pulled here)
#   engine.sh clean DIR               after the engine at DIR stopped: unmounts what it left
#                                     mounted, deletes the bridges of its user-defined networks
#                                     (those with a route into DIR/address-pool: dockerd keeps
#                                     them when it stops, for its next start, and nothing else
#                                     would ever delete them once DIR is gone) and a separate
#                                     exec root; run it before removing DIR
# Clients: `docker -H unix://DIR/docker.sock ...` or DOCKER_HOST=unix://DIR/docker.sock; both
# the package's client (20.10) and a newer one (28.x) work, by API version negotiation (1.41).
# The socket is root:root 0660 (`--group root`: dockerd would otherwise give it to the group
# docker, which the package creates): only root reaches the engine, and whoever does is root on
# this host.
# Settings:
#   ENGINE_ADDRESS_POOL       where user-defined networks take their /24 subnets from, e.g.
#                             10.201.0.0/16: engines sharing a host need disjoint pools. `auto`
#                             takes the first 10.X.0.0/16, X in ENGINE_AUTO_POOLS (default
#                             200-254), that no other engine started with `auto` holds (a lock,
#                             /run/fleet-docker/pool-X.lock, held by dockerd itself while it
#                             runs) and that overlaps no route of this host; the pool taken is
#                             written to DIR/address-pool. Unset: dockerd's defaults
#                             (172.17.0.0/16...), fine for one engine per host.
#   ENGINE_STORAGE_DRIVER     the storage driver (default vfs, below); overlay2 shares layers
#                             between images and containers, where the data root's file
#                             system supports it (deploy/compose-test.sh uses it on ext4)
#   ENGINE_SHUTDOWN_TIMEOUT   seconds dockerd gives running containers at shutdown before
#                             killing them (default 15; a process that is PID 1 of its container
#                             ignores TERM unless it handles it)
# What is deliberately off: iptables (--iptables=false, and no IP forwarding: the host's
# firewall and sysctls are left alone; containers therefore reach nothing beyond this host, and
# published ports are served by docker-proxy, the userland proxy), the default bridge
# (--bridge=none: a container without --network has loopback only; user-defined networks work
# and resolve their containers by name), live restore (containers stop with the engine).
# Storage is vfs (every layer a full copy: slow for big images, but works on any filesystem,
# needs no mounts of its own). The host's /etc/docker/daemon.json is not read: DIR/daemon.json
# (empty) is. Containers' logs: json-file, 10 MB x 3 per container.
# The exec root holds unix sockets, whose paths are limited to 108 bytes: when DIR/exec would
# be long, the exec root is /run/fleet-docker/exec-<hash of DIR> instead, recorded in
# DIR/exec-root. Mounts an engine killed by SIGKILL left behind under DIR or its exec root are
# unmounted at the next run. Needs root.
set -euo pipefail

IMAGE_DEFAULT=fleet-test/busybox:latest
state=/run/fleet-docker

die() { echo "engine.sh: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (dockerd manages namespaces, cgroups and mounts)"
    command -v dockerd >/dev/null || die "no dockerd (install docker.io: deploy/install-deps.sh)"
}

client() {
    command -v docker >/dev/null || die "no docker client (install docker.io: deploy/install-deps.sh)"
    # Not the caller's ~/.docker: its contexts and credential helpers are not ours.
    DOCKER_CONFIG=${ENGINE_CLIENT_CONFIG:-$state/client} docker -H "unix://$dir/docker.sock" "$@"
}

# DIR as an absolute path, made if missing (root's, traversable only).
resolve_dir() {
    mkdir -p "$1"
    dir=$(cd "$1" && pwd -P)
    chown root:root "$dir"
    chmod 0711 "$dir"
}

# The exec root of DIR: DIR/exec, or a short path under /run when that would leave too little
# room for the sockets containerd and its shims create under it (the longest measured:
# exec/containerd/containerd.sock.ttrpc, 36 bytes after DIR).
exec_root() {
    if [ ${#dir} -le 60 ]; then
        echo "$dir/exec"
    else
        echo "$state/exec-$(printf '%s' "$dir" | sha256sum | cut -c1-16)"
    fi
}

# Unmounts what is left mounted under $1 (deepest first), e.g. network namespaces and the data
# root's own bind mount after dockerd was killed.
unmount_under() {
    local prefix=$1 point
    awk -v p="$prefix" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo \
        | sort -r | while read -r point; do
            umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null || true
        done
}

# Picks a free 10.X.0.0/16 and locks it on fd 9 (which dockerd inherits, holding the lock for
# as long as it runs).
auto_pool() {
    local range=${ENGINE_AUTO_POOLS:-200-254} first last x
    [[ "$range" =~ ^([0-9]+)-([0-9]+)$ ]] || die "ENGINE_AUTO_POOLS is no range MIN-MAX: $range"
    first=${BASH_REMATCH[1]} last=${BASH_REMATCH[2]}
    [ "$first" -le "$last" ] && [ "$last" -le 255 ] \
        || die "ENGINE_AUTO_POOLS must be a range within 0-255: $range"
    for ((x = first; x <= last; x++)); do
        exec 9>"$state/pool-$x.lock"
        if flock -n 9; then
            # Another network of this host (a route into or around the pool) rules it out too.
            if [ -z "$(ip -4 route show root "10.$x.0.0/16")" ] \
                && [ -z "$(ip -4 route show match "10.$x.0.0/16" | grep -v '^default' || true)" ]; then
                echo "10.$x.0.0/16"
                return 0
            fi
            flock -u 9
        fi
        exec 9>&-
    done
    die "no free address pool 10.X.0.0/16 with X in $range"
}

valid_pool() {
    local IFS=. part
    [[ "$1" =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3})/([0-9]{1,2})$ ]] || return 1
    [ "${BASH_REMATCH[3]}" -le 24 ] || return 1
    for part in ${BASH_REMATCH[1]}; do [ "$part" -le 255 ] || return 1; done
}

case "${1:-}" in
run)
    [ $# -eq 2 ] || die "usage: $0 run DIR"
    need_root
    (umask 077; mkdir -p "$state")
    resolve_dir "$2"
    # unix:// + DIR/docker.sock within the 108 bytes of a socket path.
    [ $((${#dir} + 12)) -le 107 ] || die "DIR is too long for a socket path: $dir"
    exec_dir=$(exec_root)
    echo "$exec_dir" >"$dir/exec-root"
    unmount_under "$exec_dir"
    unmount_under "$dir/root"
    mkdir -p "$exec_dir" "$dir/root"
    chmod 0700 "$exec_dir"
    rm -f "$dir/docker.sock" "$dir/address-pool"
    echo '{}' >"$dir/daemon.json"
    shutdown_timeout=${ENGINE_SHUTDOWN_TIMEOUT:-15}
    [[ "$shutdown_timeout" =~ ^[0-9]+$ ]] \
        || die "ENGINE_SHUTDOWN_TIMEOUT must be a number of seconds: $shutdown_timeout"
    args=(
        --config-file "$dir/daemon.json"
        --data-root "$dir/root" --exec-root "$exec_dir"
        -H "unix://$dir/docker.sock" --group root --pidfile "$dir/docker.pid"
        --iptables=false --ip-forward=false --bridge=none
        --storage-driver "${ENGINE_STORAGE_DRIVER:-vfs}"
        --log-driver json-file --log-opt max-size=10m --log-opt max-file=3
        --shutdown-timeout "$shutdown_timeout"
    )
    pool=${ENGINE_ADDRESS_POOL:-}
    if [ "$pool" = auto ]; then
        pool=$(auto_pool)
        # auto_pool ran in a subshell: take its lock again here, on the fd dockerd inherits.
        x=${pool#10.}; x=${x%%.*}
        exec 9>"$state/pool-$x.lock"
        flock -n 9 || die "lost the race for address pool $pool; start again"
    fi
    if [ -n "$pool" ]; then
        valid_pool "$pool" || die "ENGINE_ADDRESS_POOL is no IPv4 prefix of /24 or wider: $pool"
        args+=(--default-address-pool "base=$pool,size=24")
        echo "$pool" >"$dir/address-pool"
    fi
    cd "$dir"
    # exec: TERM and INT reach dockerd itself, which stops its containers and containerd,
    # unmounts what it mounted and exits.
    exec dockerd "${args[@]}"
    ;;
wait)
    [ $# -ge 2 ] && [ $# -le 3 ] || die "usage: $0 wait DIR [SECONDS]"
    dir=$2 seconds=${3:-60}
    [[ "$seconds" =~ ^[0-9]+$ ]] || die "SECONDS must be a number: $seconds"
    deadline=$((SECONDS + seconds))
    until client version >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "no engine answers on $dir/docker.sock after ${seconds}s"
        sleep 0.1
    done
    ;;
import-busybox)
    [ $# -ge 2 ] && [ $# -le 3 ] || die "usage: $0 import-busybox DIR [IMAGE]"
    dir=$2 image=${3:-$IMAGE_DEFAULT}
    need_root
    if client image inspect "$image" >/dev/null 2>&1; then
        exit 0
    fi
    busybox=/bin/busybox
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' \
        || die "no busybox-static (its /bin/busybox is static; install: deploy/install-deps.sh)"
    rootfs=$(mktemp -d /tmp/fleet-busybox-XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    mkdir -p "$rootfs/bin" "$rootfs/sbin" "$rootfs/usr/bin" "$rootfs/usr/sbin" "$rootfs/etc" \
        "$rootfs/root" "$rootfs/tmp"
    chmod 1777 "$rootfs/tmp"
    chmod 0700 "$rootfs/root"
    cp "$busybox" "$rootfs/bin/busybox"
    # Each applet where busybox itself would install it (/bin/sh, /sbin/ip, /usr/bin/wget...).
    while read -r applet; do
        [ "$applet" = bin/busybox ] || [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
    done < <("$busybox" --list-full)
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
        >"$rootfs/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$rootfs/etc/group"
    tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . | client import - "$image" >/dev/null
    ;;
clean)
    [ $# -eq 2 ] || die "usage: $0 clean DIR"
    need_root
    [ -d "$2" ] || exit 0
    dir=$(cd "$2" && pwd -P)
    if [ -s "$dir/docker.pid" ] && kill -0 "$(cat "$dir/docker.pid")" 2>/dev/null; then
        die "the engine at $dir still runs (pid $(cat "$dir/docker.pid")): stop it first"
    fi
    exec_dir=$(exec_root)
    [ ! -s "$dir/exec-root" ] || exec_dir=$(cat "$dir/exec-root")
    unmount_under "$exec_dir"
    unmount_under "$dir/root"
    if [ -s "$dir/address-pool" ]; then
        pool=$(cat "$dir/address-pool")
        valid_pool "$pool" || die "$dir/address-pool holds no prefix: $pool"
        ip -4 -o route show root "$pool" | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }' \
            | sort -u | while read -r device; do
                # Only bridges: a route of the pool through anything else is not dockerd's.
                if [ -d "/sys/class/net/$device/bridge" ]; then ip link delete "$device" || true; fi
            done
    fi
    case "$exec_dir" in "$state"/exec-*) rm -rf "$exec_dir" ;; esac
    ;;
*)
    echo "usage: $0 run DIR | wait DIR [SECONDS] | import-busybox DIR [IMAGE] | clean DIR" >&2
    exit 2
    ;;
esac
