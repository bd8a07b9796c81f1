#!/usr/bin/env bash
# The postgres container's command (deploy/postgresql/Dockerfile, deploy/docker-compose.yml):
#   container-start.sh DIR PASSWORD_FILE PORT
# `cluster.sh init DIR` until one has completed (marked by DIR/.initialised; a half-made
# cluster is removed and made again), then `cluster.sh run DIR PORT` in its place, listening on
# every address of the container (PG_LISTEN_HOST=*: the compose network decides who reaches it;
# passwords are required over TCP). init is given a private copy of the password: cluster.sh
# hands its password file to the server's user, and the secret is a file of the host.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# = 3 ] || { echo "usage: $0 DIR PASSWORD_FILE PORT" >&2; exit 2; }
dir=$1 password_file=$2 port=$3

if [ ! -e "$dir/.initialised" ]; then
    [ -r "$password_file" ] \
        || { echo "container-start.sh: no superuser password in $password_file (a secret)" >&2; exit 1; }
    rm -rf "${dir:?}/data"
    copy=$(mktemp)
    trap 'rm -f "$copy"' EXIT
    cat "$password_file" >"$copy"
    "$here/cluster.sh" init "$dir" "$copy"
    rm -f "$copy"
    trap - EXIT
    touch "$dir/.initialised"
fi
export PG_LISTEN_HOST=${PG_LISTEN_HOST:-*}
exec "$here/cluster.sh" run "$dir" "$port"
