#!/usr/bin/env bash
# A private MongoDB-wire server for the mongodb addon: SecantusDB (PyPI secantusdb, a beta that
# speaks the wire protocol with SCRAM-SHA-256, users and roles), configured in one place for
# `make up` and for the Rust test kit (shared/src/testkit):
#   cluster.sh setup                    as root: the system user fleet-mongodb and SecantusDB in
#                                       a venv under /opt/fleet/secantusdb (run by init too)
#   cluster.sh init DIR PASSWORD_FILE   create DIR/data and the admin user `root` (role root)
#   cluster.sh run DIR PORT [--flag]... exec the server with --auth on 127.0.0.1:PORT
# SecantusDB is a STAND-IN for development and tests only: it does not enforce all of its own
# access control (services/mongodb/README.md). Production points the service at a real mongod.
#
# As root, the server runs as the unprivileged user fleet-mongodb, never as root, with umask
# 077; DIR (data, password file, logs) belongs to that user, mode 0700. The venv is built from
# the system Python because a pyenv Python under /root is out of that user's reach.
set -euo pipefail

user=fleet-mongodb
venv=${FLEET_SECANTUSDB_VENV:-/opt/fleet/secantusdb}
version=0.7.0b3

is_root() { [ "$(id -u)" = 0 ]; }

setup() {
    is_root || { echo "cluster.sh setup: must run as root" >&2; exit 1; }
    mkdir -p "$(dirname "$venv")"
    # Concurrent test binaries may all start a server at once: one of them builds.
    exec 9>"$(dirname "$venv")/.secantusdb.lock"
    flock 9
    if ! id "$user" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$user"
    fi
    if [ ! -x "$venv/bin/secantusd-py" ] || [ ! -e "$venv/.fleet-$version" ]; then
        echo "cluster.sh: installing SecantusDB $version into $venv" >&2
        rm -rf "$venv"
        /usr/bin/python3 -m venv "$venv" \
            || { echo "cluster.sh: cannot create a venv (apt-get install python3-venv)" >&2; exit 1; }
        "$venv/bin/pip" install -q --disable-pip-version-check "secantusdb==$version" pymongo >&2
        chmod -R go-w,a+rX "$venv"
        touch "$venv/.fleet-$version"
    fi
    exec 9>&-
}

# The server as this script runs it: as root through setpriv as $user, from the venv.
server() {
    umask 077
    if is_root; then
        exec env HOME="$1" setpriv --reuid="$user" --regid="$user" --init-groups -- \
            "$venv/bin/secantusd-py" --host 127.0.0.1 --storage-path "$1/data" \
            --cache-size 64M "${@:2}"
    fi
    exec secantusd-py --host 127.0.0.1 --storage-path "$1/data" --cache-size 64M "${@:2}"
}

# Gives DIR to the server's user and closes it to everyone else (also repairs a DIR made by an
# older version of this script, when the server ran as root with umask 022).
own_dir() {
    if is_root; then chown -R "$user:$user" "$1"; fi
    chmod -R go-rwx "$1"
}

case "${1:-}" in
setup)
    setup
    ;;
init)
    dir=$2 password_file=$3
    if is_root; then setup; fi
    (umask 077; mkdir -p "$dir/data")
    own_dir "$dir"
    python=python3
    if is_root; then python="$venv/bin/python3"; fi
    port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    # Once without --auth, to create the admin; then every start is with --auth.
    (server "$dir" --port "$port" >"$dir/init.log" 2>&1) &
    pid=$!
    trap 'kill "$pid" 2>/dev/null || true' EXIT
    PASSWORD_FILE="$password_file" PORT="$port" "$python" - <<'PY'
import os, time
from pymongo import MongoClient
password = open(os.environ["PASSWORD_FILE"]).read().strip()
client = MongoClient(f"mongodb://127.0.0.1:{os.environ['PORT']}", serverSelectionTimeoutMS=30000)
client.admin.command("ping")
client.admin.command("createUser", "root", pwd=password, roles=[{"role": "root", "db": "admin"}])
PY
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    trap - EXIT
    own_dir "$dir"
    ;;
run)
    dir=$2 port=$3
    shift 3
    if is_root; then setup; fi
    own_dir "$dir"
    cd "$dir"
    server "$dir" --port "$port" --auth "$@"
    ;;
*)
    echo "usage: $0 setup | init DIR PASSWORD_FILE | run DIR PORT [--flag]..." >&2
    exit 2
    ;;
esac
