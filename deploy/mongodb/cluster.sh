#!/usr/bin/env bash
# A private MongoDB-wire server for the mongodb addon: SecantusDB (PyPI secantusdb, a beta that
# speaks the wire protocol with SCRAM-SHA-256, users and roles), configured in one place for
# `make up` and for the Rust test kit (shared/src/testkit):
#   cluster.sh init DIR PASSWORD_FILE   create DIR/data and the admin user `root` (role root)
#   cluster.sh run DIR PORT [--flag]... exec the server with --auth on 127.0.0.1:PORT
# Production deploys the official mongod image instead (README: the mongodb addon).
set -euo pipefail

server() { exec secantusd-py --host 127.0.0.1 --storage-path "$1/data" --cache-size 64M "${@:2}"; }

case "${1:-}" in
init)
    dir=$2 password_file=$3
    mkdir -p "$dir/data"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    # Once without --auth, to create the admin; then every start is with --auth.
    (server "$dir" --port "$port" >"$dir/init.log" 2>&1) &
    pid=$!
    trap 'kill "$pid" 2>/dev/null || true' EXIT
    PASSWORD_FILE="$password_file" PORT="$port" python3 - <<'PY'
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
    ;;
run)
    dir=$2 port=$3
    shift 3
    cd "$dir"
    server "$dir" --port "$port" --auth "$@"
    ;;
*)
    echo "usage: $0 init DIR PASSWORD_FILE | run DIR PORT [--flag]..." >&2
    exit 2
    ;;
esac
