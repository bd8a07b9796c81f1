#!/usr/bin/env bash
# Creates the secret files docker-compose.yml mounts, once. Keep master.key backed up: every app
# password is derived from it.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets"
mkdir -p "$dir"
for name in master.key token postgres-password mariadb-password mongo-password ldap-password; do
    if [ ! -s "$dir/$name" ]; then
        (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/$name")
        echo "created $dir/$name"
    fi
done
# The services run as uid 10001 in their containers and read these files.
chmod 644 "$dir"/*
