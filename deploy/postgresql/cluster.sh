#!/usr/bin/env bash
# A private PostgreSQL cluster for the postgresql addon, configured in one place for `make up`
# and for the Rust test kit (shared/src/testkit):
#   cluster.sh init DIR PASSWORD_FILE   initdb DIR/data, superuser `postgres` with that password
#   cluster.sh run DIR PORT [-c k=v]... exec postgres on 127.0.0.1:PORT in the foreground
# Passwords are required over TCP (scram-sha-256); pgextwlist lets app roles create the
# extensions on the addon's whitelist themselves. As root, the server runs as user postgres.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
whitelist_file="$here/../../services/postgresql/extension-whitelist.txt"
bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bindir/postgres" ] || { echo "cluster.sh: no PostgreSQL server found (run deploy/install-deps.sh)" >&2; exit 1; }

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        exec "$@"
    fi
}

case "${1:-}" in
init)
    dir=$2 password_file=$3
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir" "$password_file"; fi
    cd "$dir"
    (as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --pwfile="$password_file") >/dev/null
    ;;
run)
    dir=$2 port=$3
    shift 3
    cd "$dir"
    as_postgres "$bindir/postgres" -D "$dir/data" \
        -c listen_addresses=127.0.0.1 -c "port=$port" -c "unix_socket_directories=$dir" \
        -c local_preload_libraries=pgextwlist \
        -c "extwlist.extensions=$(grep -v '^\s*$' "$whitelist_file" | paste -sd, -)" \
        "$@"
    ;;
*)
    echo "usage: $0 init DIR PASSWORD_FILE | run DIR PORT [-c name=value]..." >&2
    exit 2
    ;;
esac
