#!/usr/bin/env bash
# The mongo container's command (deploy/mongodb/Dockerfile, deploy/docker-compose.yml):
#   container-start.sh DIR PASSWORD_FILE PORT
# `cluster.sh init DIR PASSWORD_FILE` (the admin `root`) until one has completed
# (deploy/first-start.sh), then `cluster.sh run DIR PORT`
# in its place, with --auth, on every address of the container (the compose network decides
# who reaches it), as a standalone server like a single mongod: SecantusDB otherwise calls
# itself a replica set whose one member is its listen address (0.0.0.0 here), which drivers
# then fail to reach.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# = 3 ] || { echo "usage: $0 DIR PASSWORD_FILE PORT" >&2; exit 2; }
dir=$1 password_file=$2 port=$3

"$here/../first-start.sh" "$dir" "$password_file" "admin password" "$here/cluster.sh" init "$dir"
exec "$here/cluster.sh" run "$dir" "$port" --host 0.0.0.0 --standalone
