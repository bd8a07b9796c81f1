#!/usr/bin/env bash
# The turn-server container's command (deploy/turn/Dockerfile, deploy/docker-compose.yml):
#   container-start.sh DIR PORT
# `cluster.sh init DIR` until one has completed (the certificate, then the user database in
# journal mode WAL with the turn service's table: an init cut short is run again at the next
# start rather than leaving a half-made DIR behind), then `cluster.sh run DIR PORT` in its place,
# turnserver in the foreground until TERM. The settings are cluster.sh's (TURN_* in its header);
# TURN_REALM names the self-signed certificate made at that first init.
# TURN_LISTEN_HOST, the one IPv4 address turnserver listens and opens relays on, defaults here to
# the container's own address on its network (what `hostname -i` resolves the container's name
# to, loopback skipped; the first one when it is on several networks). 0.0.0.0 is refused by
# cluster.sh. Clients outside reach it through the ports published on the host, and are told
# the host's public address as relay address: TURN_EXTERNAL_IP (docker-compose.yml).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# = 2 ] || { echo "usage: $0 DIR PORT" >&2; exit 2; }
dir=$1 port=$2

initialised() {
    local db=$dir/db/turndb
    [ -s "$dir/tls/cert.pem" ] && [ -s "$dir/tls/key.pem" ] && [ -s "$db" ] || return 1
    [ "$(sqlite3 -init /dev/null -batch -readonly "$db" 'PRAGMA journal_mode;' 2>/dev/null)" = wal ] \
        || return 1
    [ "$(sqlite3 -init /dev/null -batch -readonly "$db" \
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'
           AND name IN ('turn_secret', 'fleet_turn_apps');" 2>/dev/null)" = 2 ]
}

if [ -z "${TURN_LISTEN_HOST:-}" ]; then
    TURN_LISTEN_HOST=
    for address in $(hostname -i 2>/dev/null || true); do
        case $address in
        127.*) ;;
        *.*.*.*) TURN_LISTEN_HOST=$address; break ;;
        esac
    done
    [ -n "$TURN_LISTEN_HOST" ] || {
        echo "container-start.sh: no IPv4 address of this container (hostname -i): set TURN_LISTEN_HOST" >&2
        exit 1
    }
    echo "container-start.sh: listening on $TURN_LISTEN_HOST (TURN_LISTEN_HOST)" >&2
fi
export TURN_LISTEN_HOST

if ! initialised; then
    "$here/cluster.sh" init "$dir"
fi
exec "$here/cluster.sh" run "$dir" "$port"
