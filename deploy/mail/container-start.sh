#!/usr/bin/env bash
# The mail-server container's command (deploy/mail/Dockerfile, deploy/docker-compose.yml):
#   container-start.sh DIR PASSWORD_FILE PORT
# `cluster.sh init DIR PASSWORD_FILE` until one has completed (its last step stores the
# postmaster's row, so an init cut short is run again at the next start rather than leaving a
# half-made DIR behind), then `cluster.sh run DIR PORT` in its place, Postfix and Dovecot in the
# foreground until TERM. The settings are cluster.sh's (MAIL_* in its header); MAIL_DOMAIN and
# the postmaster's password count at that first init only.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# = 3 ] || { echo "usage: $0 DIR PASSWORD_FILE PORT" >&2; exit 2; }
dir=$1 password_file=$2 port=$3

initialised() {
    [ -s "$dir/domains" ] || return 1
    [ "$(sqlite3 -init /dev/null -batch -readonly "$dir/accounts/accounts.db" \
        "SELECT 1 FROM accounts WHERE addon = 'postmaster' LIMIT 1;" 2>/dev/null)" = 1 ]
}

if ! initialised; then
    [ -r "$password_file" ] \
        || { echo "container-start.sh: no postmaster password in $password_file (a secret)" >&2; exit 1; }
    "$here/cluster.sh" init "$dir" "$password_file"
fi
exec "$here/cluster.sh" run "$dir" "$port"
