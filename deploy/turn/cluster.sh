#!/usr/bin/env bash
# A private coturn (turnserver) for the turn addon, configured in one place for `make up`, the
# compose file and the Rust test kit (shared/src/testkit/turn.rs):
#   cluster.sh init DIR        the user database DIR/db/turndb (coturn's own schema, no rows)
#                              and a self-signed certificate for TURN_REALM and 127.0.0.1
#                              (unless CERT_FILE and KEY_FILE name the operator's)
#   cluster.sh run DIR PORT    turnserver in the foreground until TERM or INT, configured by
#                              DIR/turnserver.conf, rendered from turnserver.conf.in next to
#                              this script at every start (never /etc/turnserver.conf)
# Ports, on TURN_LISTEN_HOST (default 127.0.0.1; one IPv4 address of this host, where relays
# are opened too: 0.0.0.0 is refused, as coturn would then report 0.0.0.0 as relay address):
#   PORT     TURN and STUN over UDP and TCP
#   PORT+1   TURN over TLS, and over DTLS (UDP)
#   relays   UDP relay ports (and TCP ones, RFC 6062) from TURN_RELAY_PORTS, MIN-MAX (default
#            49152-49251: at most that many allocations at once; PORT and PORT+1 outside it)
# TURN_EXTERNAL_IP, if set, is the public IPv4 address behind a 1:1 NAT that coturn reports as
# the relay address (external-ip); TURN_REALM (default turn.example.test) is the realm of every
# credential and the certificate's name.
# Authentication is the TURN REST scheme (use-auth-secret): a client's username is
# `expiry:user` (expiry in Unix seconds, in the future) and its password
# base64(HMAC-SHA1(secret, username)) under any secret of the realm in the SQLite database
# DIR/db/turndb, table turn_secret(realm, value) (coturn's schema,
# /usr/share/coturn/schema.sql), and the turn service's own table of which app owns which
# secret (fleet_turn_apps, fleet.sql next to this script, applied at every init and run). The
# turn service (as root) INSERTs and DELETEs rows; coturn
# runs `select value from turn_secret where realm='<realm>'` at every authentication, with no
# cache, so a new secret works for the next allocation and a deleted one fails for the next
# (measured: at once). An allocation already open keeps the key it was made with: its
# refreshes, permissions and channels are not checked against the table again, and it lives as
# long as its client refreshes it. coturn opens the database without a busy timeout, so the
# database is kept in journal mode WAL, where readers never wait for a writer (in mode DELETE an
# authentication meeting a commit fails with "database is locked"). WAL readers create and write
# the -wal and -shm files, so DIR/db and the database belong to coturn's user, 0700/0600; DIR is
# root's, 0711; both re-applied at every init and run.
# Peers: relays never reach private, shared, link-local or IPv6 unique-local addresses, nor
# loopback or multicast (denied-peer-ip in the template). TURN_ALLOW_LOOPBACK=1 allows loopback
# peers, for tests on one machine only (coturn refuses that with its CLI on and no CLI password;
# the CLI is always off here).
# Logs go to stdout only. Needs root: turnserver starts as root (ports, the certificate's key in
# DIR/tls, root's, 0700) and drops to coturn's own user `turnserver` (from the coturn package)
# before serving. Certificates are read at start only: a renewed one needs a restart (run
# installs CERT_FILE and KEY_FILE again at every start).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

user=turnserver
schema=/usr/share/coturn/schema.sql

die() { echo "cluster.sh: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] \
        || die "must run as root (turnserver starts as root and drops to user $user)"
    id "$user" >/dev/null 2>&1 \
        || die "no user $user (install coturn: deploy/install-deps.sh)"
    command -v turnserver >/dev/null || die "no turnserver (install coturn: deploy/install-deps.sh)"
}

sql() { sqlite3 -init /dev/null -batch -bail "$@"; }

valid_host() { [[ "$1" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$ ]]; }

valid_ipv4() {
    local IFS=. part
    [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    for part in $1; do [ "$part" -le 255 ] || return 1; done
}

# Directories and modes, also repairing a DIR whose owners drifted: DIR root's and only
# traversable; DIR/db, the user database's directory, coturn's user's alone (in WAL mode every
# reader needs to create and write the database's -wal and -shm files next to it; root, the turn
# service, writes it anyway, and SQLite gives the files it creates as root the database's
# owner); the certificate and key root's (read before the privileges drop).
own_dir() {
    local dir=$1 file
    mkdir -p "$dir/tls" "$dir/run" "$dir/db"
    chown root:root "$dir" "$dir/tls" "$dir/run"
    chmod 0711 "$dir"
    chmod 0700 "$dir/tls" "$dir/run"
    chown "$user:$user" "$dir/db"
    chmod 0700 "$dir/db"
    for file in "$dir/db/turndb" "$dir/db/turndb-wal" "$dir/db/turndb-shm"; do
        if [ -e "$file" ]; then
            chown "$user:$user" "$file"
            chmod 0600 "$file"
        fi
    done
}

# coturn's user reaches DIR by its path: every directory above it must let it through.
check_reachable() {
    setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups -- \
        sh -c 'cd "$1"' sh "$1" 2>/dev/null \
        || die "user $user cannot reach $1: every directory above it needs o+x"
}

# The user database with coturn's own schema, made once (coturn would make the same tables
# itself on first use, but only when a client authenticates), in journal mode WAL.
make_db() {
    local db=$1/db/turndb
    if [ ! -e "$db" ]; then
        [ -r "$schema" ] || die "no $schema (install coturn: deploy/install-deps.sh)"
        rm -f "$db.tmp"
        (umask 077; sql "$db.tmp" <"$schema") || die "cannot create $db from $schema"
        mv "$db.tmp" "$db"
    fi
    [ "$(sql "$db" 'PRAGMA journal_mode=WAL;')" = wal ] || die "cannot put $db in WAL mode"
    # The turn service's table of which app owns which secret (fleet.sql next to this script).
    sql "$db" <"$here/fleet.sql" || die "cannot add the turn service's table to $db"
}

# The database exists, has the table coturn reads secrets from, is in journal mode WAL, and
# coturn's user can read it. WAL, because coturn opens the database without a busy timeout: in
# the rollback-journal modes, an authentication that meets a write being committed fails
# ("database is locked", the client gets 401), while in WAL readers never wait for writers.
check_db() {
    local db=$1/db/turndb mode
    [ -s "$db" ] || die "$1 is not initialised (cluster.sh init $1)"
    sql "$db" 'SELECT count(*) FROM turn_secret;' >/dev/null \
        || die "$db has no table turn_secret (coturn's schema, $schema)"
    mode=$(sql "$db" 'PRAGMA journal_mode;') || die "cannot read $db"
    [ "$mode" = wal ] || die "$db is in journal mode $mode, not wal"
    sql "$db" <"$here/fleet.sql" || die "cannot add the turn service's table to $db"
    setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups -- \
        sqlite3 -init /dev/null -batch "$db" 'SELECT count(*) FROM turn_secret;' \
        >/dev/null 2>&1 || die "user $user cannot read $db"
}

# The certificate, or a fresh self-signed one for the realm's host and 127.0.0.1.
install_certificate() {
    local dir=$1 hostname=$2
    if [ -n "${CERT_FILE:-}" ] || [ -n "${KEY_FILE:-}" ]; then
        [ -r "${CERT_FILE:-}" ] && [ -r "${KEY_FILE:-}" ] \
            || die "CERT_FILE and KEY_FILE must both name readable files"
        install -m 0600 -o root -g root "$CERT_FILE" "$dir/tls/cert.pem"
        install -m 0600 -o root -g root "$KEY_FILE" "$dir/tls/key.pem"
    elif [ ! -s "$dir/tls/cert.pem" ] || [ ! -s "$dir/tls/key.pem" ]; then
        (umask 077
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
                -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" -subj "/CN=$hostname" \
                -addext "subjectAltName=DNS:$hostname,IP:127.0.0.1" \
                -addext "basicConstraints=critical,CA:FALSE" \
                -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
                -addext "extendedKeyUsage=serverAuth" \
                >"$dir/tls/openssl.log" 2>&1) \
            || { cat "$dir/tls/openssl.log" >&2; die "openssl could not make a certificate"; }
    fi
}

# DIR/turnserver.conf from the template, for these ports.
render() {
    local dir=$1 port=$2 host=$3 realm=$4 relay=${TURN_RELAY_PORTS:-49152-49251}
    local min max relay_ip external loopback
    [[ "$relay" =~ ^([0-9]+)-([0-9]+)$ ]] || die "TURN_RELAY_PORTS is no range MIN-MAX: $relay"
    min=${BASH_REMATCH[1]} max=${BASH_REMATCH[2]}
    [ "$min" -ge 1024 ] && [ "$max" -le 65535 ] && [ "$min" -le "$max" ] \
        || die "TURN_RELAY_PORTS must be a range within 1024-65535: $relay"
    if [ "$port" -le "$max" ] && [ "$((port + 1))" -ge "$min" ]; then
        die "PORT and PORT+1 must lie outside TURN_RELAY_PORTS ($relay)"
    fi
    # Relays on the listening address.
    relay_ip="relay-ip=$host"
    external='# no external-ip (TURN_EXTERNAL_IP unset)'
    if [ -n "${TURN_EXTERNAL_IP:-}" ]; then
        valid_ipv4 "$TURN_EXTERNAL_IP" || die "TURN_EXTERNAL_IP is no IPv4 address: $TURN_EXTERNAL_IP"
        external="external-ip=$TURN_EXTERNAL_IP/$host"
    fi
    case ${TURN_ALLOW_LOOPBACK:-0} in
    1) loopback='# TURN_ALLOW_LOOPBACK=1: loopback peers allowed (tests only)\nallow-loopback-peers' ;;
    0) loopback='denied-peer-ip=127.0.0.0-127.255.255.255\ndenied-peer-ip=::1' ;;
    *) die "TURN_ALLOW_LOOPBACK must be 0 or 1: $TURN_ALLOW_LOOPBACK" ;;
    esac
    (umask 077
        sed -e "s|@DIR@|$dir|g" -e "s|@LISTEN_IP@|$host|g" -e "s|@RELAY_IP@|$relay_ip|g" \
            -e "s|@EXTERNAL_IP@|$external|g" -e "s|@LOOPBACK@|$loopback|g" \
            -e "s|@PORT@|$port|g" -e "s|@TLS_PORT@|$((port + 1))|g" \
            -e "s|@MIN_PORT@|$min|g" -e "s|@MAX_PORT@|$max|g" \
            -e "s|@REALM@|$realm|g" -e "s|@DB@|$dir/db/turndb|g" \
            -e "s|@CERT@|$dir/tls/cert.pem|g" -e "s|@KEY@|$dir/tls/key.pem|g" \
            -e "s|@PIDFILE@|$dir/run/turnserver.pid|g" \
            "$here/turnserver.conf.in" >"$dir/turnserver.conf.tmp"
        mv "$dir/turnserver.conf.tmp" "$dir/turnserver.conf")
    ! grep -q '@[A-Z_]*@' "$dir/turnserver.conf" || die "a placeholder is left in turnserver.conf"
}

realm=${TURN_REALM:-turn.example.test}
case "${1:-}" in
init)
    [ $# -eq 2 ] || die "usage: $0 init DIR"
    dir=$2
    need_root
    valid_host "$realm" || die "TURN_REALM is no host name: $realm"
    (umask 077; mkdir -p "$dir")
    dir=$(cd "$dir" && pwd -P)
    own_dir "$dir"
    check_reachable "$dir"
    install_certificate "$dir" "$realm"
    make_db "$dir"
    own_dir "$dir"
    check_db "$dir"
    ;;
run)
    [ $# -eq 3 ] || die "usage: $0 run DIR PORT"
    dir=$2 port=$3
    need_root
    valid_host "$realm" || die "TURN_REALM is no host name: $realm"
    [ -s "$dir/db/turndb" ] || die "$dir is not initialised (cluster.sh init $dir)"
    dir=$(cd "$dir" && pwd -P)
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65534 ] \
        || die "PORT must leave room for PORT+1: $port"
    host=${TURN_LISTEN_HOST:-127.0.0.1}
    valid_ipv4 "$host" && [ "$host" != 0.0.0.0 ] \
        || die "TURN_LISTEN_HOST must be one IPv4 address of this host: $host"
    if [ -n "${CERT_FILE:-}" ] || [ -n "${KEY_FILE:-}" ]; then
        # A renewed certificate of the operator's is picked up at every start.
        install_certificate "$dir" "$realm"
    fi
    [ -s "$dir/tls/cert.pem" ] && [ -s "$dir/tls/key.pem" ] \
        || die "no certificate in $dir/tls (cluster.sh init $dir)"
    own_dir "$dir"
    check_reachable "$dir"
    check_db "$dir"
    render "$dir" "$port" "$host" "$realm"
    cd "$dir"
    umask 077
    # exec: TERM and INT reach turnserver itself, which exits on both.
    exec turnserver -c "$dir/turnserver.conf"
    ;;
*)
    echo "usage: $0 init DIR | run DIR PORT" >&2
    exit 2
    ;;
esac
