#!/usr/bin/env bash
# A private PostgreSQL cluster for the postgresql addon, configured in one place for `make up`
# and for the Rust test kit (shared/src/testkit):
#   cluster.sh init DIR PASSWORD_FILE   initdb DIR/data, superuser `postgres` with that password
#   cluster.sh run DIR PORT [-c k=v]... exec postgres on 127.0.0.1:PORT in the foreground
#   cluster.sh guard DIR                 write pgextwlist's custom scripts into DIR (images)
# PG_LISTEN_HOST (default 127.0.0.1) is where `run` listens; any other value (`*` in the
# images, container-start.sh) also lets TCP clients from any address in, with a password.
# Passwords are required over TCP and on the local socket (scram-sha-256); only the server's own
# OS user may connect locally as `postgres` without one (peer). The cluster directory, which
# holds the socket, is 0700. pgextwlist lets app roles create the extensions on the addon's
# whitelist themselves, each wrapped in the checks of extension-guard/ (run as superuser before
# and after the extension's script). As root, the server runs as user postgres.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
whitelist_file="$here/../../services/postgresql/extension-whitelist.txt"

# The server: the newest installed PostgreSQL that has pgextwlist. deploy/install-deps.sh
# installs pgextwlist and the whitelisted extensions for one major version only, and a newer
# server without them must not be picked just for being newer. pgextwlist is looked for where
# `local_preload_libraries` loads it from, `$libdir/plugins/`. PG_BINDIR overrides the choice
# and must have pgextwlist too. Only init and run need a server (guard only writes files).
pgextwlist_of() { # BINDIR: where that server loads pgextwlist from
    local libdir
    libdir=$("$1/pg_config" --pkglibdir 2>/dev/null) || libdir="$1/../lib"
    echo "$libdir/plugins/pgextwlist.so"
}
find_bindir() {
    local dir
    if [ -n "${PG_BINDIR:-}" ]; then
        bindir=$PG_BINDIR
        [ -x "$bindir/postgres" ] || { echo "cluster.sh: PG_BINDIR=$bindir holds no postgres binary" >&2; exit 1; }
        [ -e "$(pgextwlist_of "$bindir")" ] || {
            echo "cluster.sh: the PostgreSQL of PG_BINDIR=$bindir has no pgextwlist ($(pgextwlist_of "$bindir")):" \
                "install postgresql-<version>-pgextwlist for it, or point PG_BINDIR at a server that has it" >&2
            exit 1
        }
        return
    fi
    bindir=
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        if [ -x "$dir/postgres" ] && [ -e "$(pgextwlist_of "$dir")" ]; then bindir=$dir; fi
    done
    [ -n "$bindir" ] || {
        echo "cluster.sh: no installed PostgreSQL server has pgextwlist" \
            "(looked for /usr/lib/postgresql/<version>/lib/plugins/pgextwlist.so; servers found:" \
            "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | paste -sd' ' - || true))." \
            "Run deploy/install-deps.sh, or install postgresql-<version>-pgextwlist for your server" \
            "(and the extensions of services/postgresql/extension-whitelist.txt)," \
            "or set PG_BINDIR=/usr/lib/postgresql/<version>/bin" >&2
        exit 1
    }
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        exec "$@"
    fi
}

# The directory is the server's alone: it holds the data, the socket and the custom scripts.
own_dir() {
    mkdir -p "$1"
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$1"; fi
    chmod -R go-rwx "$1"
}

# Who may connect, written on every start so that a cluster made by an older version of this
# script gets the same rules.
write_hba() {
    {
        echo "# Written by deploy/postgresql/cluster.sh at every start; edits are lost."
        echo "local all postgres peer"
        echo "local all all scram-sha-256"
        echo "host all all 127.0.0.1/32 scram-sha-256"
        echo "host all all ::1/128 scram-sha-256"
        if [ "${PG_LISTEN_HOST:-127.0.0.1}" != 127.0.0.1 ]; then
            echo "host all all 0.0.0.0/0 scram-sha-256"
            echo "host all all ::/0 scram-sha-256"
        fi
    } >"$1/data/pg_hba.conf"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$1/data/pg_hba.conf"; fi
    chmod 600 "$1/data/pg_hba.conf"
}

# pgextwlist's custom scripts: extension-guard/{before,after}.sql for every whitelisted
# extension, around CREATE EXTENSION and ALTER EXTENSION ... UPDATE.
write_guard() {
    local custom=$1 name action when
    rm -rf "$custom"
    while read -r name; do
        [ -n "$name" ] || continue
        mkdir -p "$custom/$name"
        for action in create update; do
            for when in before after; do
                sed -e "s/@extname@/$name/g" -e "s/@action@/$action/g" \
                    "$here/extension-guard/$when.sql" >"$custom/$name/$when-$action.sql"
            done
        done
    done < <(grep -v '^\s*$' "$whitelist_file")
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$custom"; fi
    chmod -R go-rwx "$custom"
}

case "${1:-}" in
init)
    dir=$2 password_file=$3
    find_bindir
    own_dir "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$password_file"; fi
    cd "$dir"
    (as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=peer \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --pwfile="$password_file") >/dev/null
    ;;
run)
    dir=$2 port=$3
    shift 3
    find_bindir
    write_hba "$dir"
    write_guard "$dir/extwlist"
    own_dir "$dir"
    cd "$dir"
    as_postgres "$bindir/postgres" -D "$dir/data" \
        -c "listen_addresses=${PG_LISTEN_HOST:-127.0.0.1}" -c "port=$port" -c "unix_socket_directories=$dir" \
        -c unix_socket_permissions=0700 \
        -c local_preload_libraries=pgextwlist -c "extwlist.custom_path=$dir/extwlist" \
        -c "extwlist.extensions=$(grep -v '^\s*$' "$whitelist_file" | paste -sd, -)" \
        "$@"
    ;;
guard)
    write_guard "$2"
    ;;
*)
    echo "usage: $0 init DIR PASSWORD_FILE | run DIR PORT [-c name=value]... | guard DIR" >&2
    exit 2
    ;;
esac
