#!/usr/bin/env bash
# Creates the secret files docker-compose.yml mounts, once, and on every run gives each one to
# the user that reads it, mode 0600 (so a run also repairs files an older version left 0644).
# Keep master.key backed up: every app password is derived from it.
#   init-secrets.sh [DIR]    DIR defaults to deploy/secrets, the directory the compose file uses
#
# Owners. Without swarm, `docker compose` mounts a `file:` secret as a bind mount of the host
# file: the container sees the host's owner and mode (the `uid`/`gid`/`mode` of the long secret
# syntax are swarm-only and ignored). A 0600 file is therefore readable in a container only by
# root and by the numeric uid that owns it on the host, so each file is owned by its reader:
#   - uid 10001, the `fleet` user of deploy/Dockerfile, for every file: the services read the
#     master key, the token and the admin passwords. The backend images (deploy/images.sh) read
#     their password as root at their first start (deploy/<backend>/container-start.sh and
#     cluster.sh init, before the server drops to its own user), so 10001 suits them too.
#   - coordinator-db.pgpass is the coordinator's password for its own PostgreSQL
#     (coordinator-db-password) in libpq's pgpass format, which its PostgreSQL client reads
#     (PGPASSFILE): the state URL holds no password. Made from that password, kept equal.
# Group and others get nothing, so local users of the Docker host cannot read any of them.
set -euo pipefail
umask 077

fleet_uid=10001 # `useradd --uid 10001 ... fleet` in deploy/Dockerfile
secrets=(master.key token postgres-password mariadb-password mongo-password ldap-password
    mail-postmaster-password coordinator-db-password)

dir=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets"}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

mkdir -p "$dir"
as_root chmod 700 "$dir"
for name in "${secrets[@]}"; do
    if ! as_root test -s "$dir/$name"; then
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | as_root tee "$dir/$name" >/dev/null
        echo "created $dir/$name"
    fi
    as_root chown "$fleet_uid:$fleet_uid" "$dir/$name"
    as_root chmod 600 "$dir/$name"
done
# The coordinator's pgpass line (host:port:database:user:password), kept equal to its password.
as_root sh -c 'printf "*:*:*:postgres:%s\n" "$(cat "$1")" >"$2.tmp" && mv "$2.tmp" "$2"' sh \
    "$dir/coordinator-db-password" "$dir/coordinator-db.pgpass"
as_root chown "$fleet_uid:$fleet_uid" "$dir/coordinator-db.pgpass"
as_root chmod 600 "$dir/coordinator-db.pgpass"
# Left by an older version (the official mongo image's copy), no longer mounted.
as_root rm -f "$dir/mongod-root-password"
