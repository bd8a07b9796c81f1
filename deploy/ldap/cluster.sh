#!/usr/bin/env bash
# A private OpenLDAP slapd for the ldap addon (users, groups and app bind accounts under
# dc=cloudron), configured in one place for `make up` and for the Rust test kit:
#   cluster.sh init DIR PASSWORD_FILE   slapd.conf with rootdn cn=admin,dc=cloudron and that
#                                       password, and the base entries (offline, slapadd)
#   cluster.sh run DIR PORT             exec slapd in the foreground on ldap://127.0.0.1:PORT/
#                                       (LDAP_LISTEN_HOST=0.0.0.0 listens on every address)
# As root, slapd runs as Debian's `openldap` user (from the slapd package) and never as root;
# DIR (data, slapd.conf with the rootpw hash, the password file) belongs to it, mode 0700.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

user=openldap

# Gives DIR to the server's user and closes it to everyone else (also repairs a DIR made by an
# older version of this script, when slapd ran as root).
own_dir() {
    if [ "$(id -u)" = 0 ]; then
        id "$user" >/dev/null 2>&1 \
            || { echo "cluster.sh: no user $user (install the slapd package: deploy/install-deps.sh)" >&2; exit 1; }
        chown -R "$user:$user" "$1"
    fi
    chmod -R go-rwx "$1"
}

case "${1:-}" in
init)
    dir=$2 password_file=$3
    (umask 077; mkdir -p "$dir/data")
    cp "$here/cloudron.schema" "$dir/cloudron.schema"
    root_hash=$(slappasswd -T "$password_file")
    sed -e "s|@DIR@|$dir|g" -e "s|@ROOTPW@|$root_hash|" "$here/slapd.conf.in" >"$dir/slapd.conf"
    chmod 600 "$dir/slapd.conf"
    slapadd -f "$dir/slapd.conf" -l "$here/base.ldif" >"$dir/init.log" 2>&1 \
        || { cat "$dir/init.log" >&2; exit 1; }
    own_dir "$dir"
    ;;
run)
    dir=$2 port=$3
    shift 3
    own_dir "$dir"
    cd "$dir"
    umask 077
    as_user=()
    if [ "$(id -u)" = 0 ]; then as_user=(setpriv --reuid="$user" --regid="$user" --init-groups --); fi
    # -d makes slapd stay in the foreground; level 0 logs nothing but startup errors.
    exec "${as_user[@]}" slapd -d 0 -f "$dir/slapd.conf" \
        -h "ldap://${LDAP_LISTEN_HOST:-127.0.0.1}:$port/" "$@"
    ;;
*)
    echo "usage: $0 init DIR PASSWORD_FILE | run DIR PORT" >&2
    exit 2
    ;;
esac
