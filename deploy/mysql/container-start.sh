#!/usr/bin/env bash
# The mariadb container's command (deploy/mysql/Dockerfile, deploy/docker-compose.yml):
#   container-start.sh DIR PASSWORD_FILE PORT
# `cluster.sh init DIR PASSWORD_FILE` until one has completed (deploy/first-start.sh), with the admin account fleet_admin@'%'
# (MYSQL_ADMIN_HOST: the mysql service connects from its own container), then `cluster.sh run`
# in its place on every address of the container (the compose network decides who reaches it).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# = 3 ] || { echo "usage: $0 DIR PASSWORD_FILE PORT" >&2; exit 2; }
dir=$1 password_file=$2 port=$3

MYSQL_ADMIN_HOST=${MYSQL_ADMIN_HOST:-%} \
    "$here/../first-start.sh" "$dir" "$password_file" "admin password" "$here/cluster.sh" init "$dir"
exec "$here/cluster.sh" run "$dir" "$port" --bind-address=0.0.0.0
