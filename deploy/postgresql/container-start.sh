#!/usr/bin/env bash
# The postgres container's command (deploy/postgresql/Dockerfile, deploy/docker-compose.yml):
#   container-start.sh DIR PASSWORD_FILE PORT
# `cluster.sh init DIR PASSWORD` until one has completed (deploy/first-start.sh), then
# `cluster.sh run DIR PORT` in its place, listening on every address of the container
# (PG_LISTEN_HOST=*: the compose network decides who reaches it; passwords are required over
# TCP).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# = 3 ] || { echo "usage: $0 DIR PASSWORD_FILE PORT" >&2; exit 2; }
dir=$1 password_file=$2 port=$3

"$here/../first-start.sh" "$dir" "$password_file" "superuser password" "$here/cluster.sh" init "$dir"
export PG_LISTEN_HOST=${PG_LISTEN_HOST:-*}
exec "$here/cluster.sh" run "$dir" "$port"
