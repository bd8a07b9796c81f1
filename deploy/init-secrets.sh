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
#     master key, the token and the admin passwords. The postgres and mariadb images read their
#     password as root (their entrypoints load *_PASSWORD_FILE before dropping to their user),
#     and so do the slapd and mail-server images (deploy/ldap/cluster.sh init,
#     deploy/mail/cluster.sh init), so 10001 suits them too.
#   - uid 999 for mongod-root-password, a copy of mongo-password: the official mongo image reads
#     MONGO_INITDB_ROOT_PASSWORD_FILE on every start after dropping to its user `mongodb`
#     (999), and one 0600 file cannot have two owners. Mount this copy into the mongo container
#     and mongo-password into the mongodb service.
# Group and others get nothing, so local users of the Docker host cannot read any of them.
set -euo pipefail
umask 077

fleet_uid=10001 # `useradd --uid 10001 ... fleet` in deploy/Dockerfile
mongod_uid=999  # user `mongodb` of the official mongo image
secrets=(master.key token postgres-password mariadb-password mongo-password ldap-password
    mail-postmaster-password)

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
# The mongo container's copy, kept equal to mongo-password.
as_root install -m 600 -o "$mongod_uid" -g "$mongod_uid" "$dir/mongo-password" "$dir/mongod-root-password"
