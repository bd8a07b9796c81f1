#!/usr/bin/env bash
# A private MariaDB (standing in for MySQL 8) for the mysql addon, configured in one place for
# `make up` and for the Rust test kit (shared/src/testkit):
#   cluster.sh init DIR PASSWORD_FILE   mariadb-install-db into DIR/data; admin user
#                                       fleet_admin@127.0.0.1 with that password
#   cluster.sh run DIR PORT [--opt]...  exec mariadbd on 127.0.0.1:PORT in the foreground
# As root, the server drops to user mysql.
# MYSQL_ADMIN_HOST (init; default 127.0.0.1) is the host part of the admin account: `%` in the
# image (deploy/mysql/container-start.sh), where the mysql service connects from another
# container.
set -euo pipefail
# Files and directories the server creates are its own alone (mariadbd reads these).
export UMASK=0600 UMASK_DIR=0700

case "${1:-}" in
init)
    dir=$2 password_file=$3
    mkdir -p "$dir/data"
    password=$(tr -d '\r\n' <"$password_file" | sed "s/'/''/g")
    admin_host=${MYSQL_ADMIN_HOST:-127.0.0.1}
    cat >"$dir/my.cnf" <<EOT
[mariadbd]
datadir=$dir/data
socket=$dir/mysqld.sock
pid-file=$dir/mysqld.pid
bind-address=127.0.0.1
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
max_connections=1000
# Creates (or resets) the admin account at every start.
init-file=$dir/init.sql
[client]
socket=$dir/mysqld.sock
EOT
    (umask 077; cat >"$dir/init.sql" <<EOT
CREATE USER IF NOT EXISTS 'fleet_admin'@'$admin_host' IDENTIFIED BY '$password';
ALTER USER 'fleet_admin'@'$admin_host' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON *.* TO 'fleet_admin'@'$admin_host' WITH GRANT OPTION;
DROP USER IF EXISTS ''@'localhost';
DROP USER IF EXISTS ''@'$(hostname)';
EOT
)
    user_args=()
    # The directory (data, socket, init.sql with the admin password) is the server's alone.
    chmod -R go-rwx "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown -R mysql:mysql "$dir"
        user_args=(--user=mysql)
    fi
    mariadb-install-db --defaults-file="$dir/my.cnf" "${user_args[@]}" \
        --auth-root-authentication-method=socket --skip-test-db \
        >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; exit 1; }
    ;;
run)
    dir=$2 port=$3
    shift 3
    user_args=()
    chmod -R go-rwx "$dir"
    if [ "$(id -u)" = 0 ]; then user_args=(--user=mysql); fi
    cd "$dir"
    exec mariadbd --defaults-file="$dir/my.cnf" "${user_args[@]}" --port="$port" "$@"
    ;;
*)
    echo "usage: $0 init DIR PASSWORD_FILE | run DIR PORT [--option]..." >&2
    exit 2
    ;;
esac
