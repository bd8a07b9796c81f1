#!/usr/bin/env bash
# A private Postfix + Dovecot for the mail addons (sendmail, recvmail, email), configured in one
# place for `make up`, the compose file and the Rust test kit (shared/src/testkit/mail.rs):
#   cluster.sh init DIR PASSWORD_FILE   a self-signed certificate (unless CERT_FILE and KEY_FILE
#                                       name the operator's), the mail domain MAIL_DOMAIN
#                                       (default example.test) in DIR/domains, the accounts
#                                       store, and postmaster@<domain> in it with that password
#   cluster.sh run DIR PORT             Dovecot and Postfix in the foreground until TERM or INT,
#                                       which stop both (so does either one exiting)
# Ports, all on 127.0.0.1 (MAIL_LISTEN_HOST=0.0.0.0 listens on every address) except LMTP:
#   PORT     SMTP submission, no TLS and no STARTTLS (apps are inside the platform network),
#            AUTH PLAIN/LOGIN against Dovecot
#   PORT+1   SMTPS (submission with implicit TLS)
#   PORT+2   IMAP          PORT+3   IMAPS
#   PORT+4   POP3          PORT+5   POP3S
#   PORT+6   ManageSieve
#   PORT+7   LMTP, always 127.0.0.1: Postfix delivers the mail domains' mail to Dovecot here
# Accounts: the SQLite database DIR/accounts/accounts.db, table `accounts` (schema and the
# meaning of its columns: accounts.sql next to this script, applied at init and again at every
# run). One row per (address, addon): `sendmail` rows log in to SMTP submission only,
# `recvmail` rows to IMAP/POP3/ManageSieve only and make the address a mailbox, `postmaster`
# rows (postmaster@<primary domain>, made at init) to everything; passwords are Dovecot
# `{SCHEME}hash`es (`doveadm pw -s SHA512-CRYPT`), never clear. The mail service (as root)
# writes it in transactions; Dovecot (passdb/userdb sql, dovecot-sql.conf.ext) and Postfix
# (virtual_mailbox_maps, recipients-sqlite.cf) read it at every login and every RCPT, nothing
# caches it, so a change counts at once. It must stay in journal mode DELETE (readers are
# unprivileged: DIR/accounts is root's, 0711, the database postfix:dovecot 0440, re-applied at
# every init and run). Unknown recipients in the mail domains are refused at RCPT (550).
# Mail of an app's address user@domain is kept in DIR/mail/apps/domain/user/Maildir. DIR/domains
# lists the mail domains, one a line, the primary first; Postfix accepts mail for all of them.
# An authenticated account may only send as its own address: Postfix's sender login map
# (DIR/postfix/etc/sender-login.regexp) makes every address owned by the login of the same
# name, so any other envelope sender (or <>) is refused.
# Directory users (the `email` addon), at `run` when MAIL_LDAP_URL (ldap://host:port) is set:
#   MAIL_LDAP_BIND_DN              the account that searches the directory (required)
#   MAIL_LDAP_BIND_PASSWORD_FILE   its password, read at every start into the rendered
#                                  DIR/dovecot-ldap.conf.ext (root, 0600) and
#                                  DIR/postfix/etc/recipients-ldap.cf (root:postfix, 0640);
#                                  never on a command line
#   MAIL_LDAP_BASE                 where the users are (default ou=users,dc=cloudron)
# A user is an entry of objectClass `user` whose `mail` is an address in the mail domains. They
# log in (SMTP submission, IMAP, POP3, ManageSieve) with that address and their own LDAP
# password (Dovecot binds as their entry), send only as that address, and receive its mail in
# DIR/mail/users/domain/user/Maildir: a tree apart from the apps', so sharing an address with an
# app never opens the app's mailbox (the home comes from the passdb that accepted the login).
# MAIL_MILTER (at `run`), a Postfix milter address such as inet:127.0.0.1:PORT, puts that
# milter (the mail service's header From check) on both submission ports with
# milter_default_action = tempfail: while it cannot be reached, submissions get 4xx (fail
# closed). Postfix's default milter macros apply ({auth_authen} is the login, at MAIL FROM).
# Unset, no milter is configured.
# MAIL_HOSTNAME (default mail.<primary domain>) is the name in greetings and in the generated
# certificate; MAIL_RELAYHOST, if set, is where mail to other domains goes (default: direct).
# Needs root: both masters start as root and run their workers unprivileged (Postfix's
# `postfix`, Dovecot's `dovenull` and `dovecot`); mail belongs to the system user fleet-vmail,
# created if missing. Configurations are rendered from the templates next to this script at
# every start. DIR is 0711 (its entries are each closed to all but their daemon: the daemons'
# users must traverse it) and everything in it is closed to others.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

vmail=fleet-vmail

die() { echo "cluster.sh: $*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] \
        || die "must run as root (Postfix's and Dovecot's masters start as root and drop privileges)"
    for user in postfix dovecot dovenull; do
        id "$user" >/dev/null 2>&1 \
            || die "no user $user (install postfix and dovecot-core: deploy/install-deps.sh)"
    done
}

# The one user that owns every mailbox (Dovecot's mail_uid), made on first use.
ensure_vmail() {
    if ! id "$vmail" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$vmail"
    fi
    vmail_uid=$(id -u "$vmail")
    vmail_gid=$(id -g "$vmail")
}

# The workers reach DIR by its path as their own users: every directory above it must let them
# through (a 0700 temp dir above DIR, say, makes Postfix's master exit without a word).
check_reachable() {
    local user
    for user in postfix dovecot dovenull "$vmail"; do
        setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups -- \
            sh -c 'cd "$1"' sh "$1" 2>/dev/null \
            || die "user $user cannot reach $1: every directory above it needs o+x"
    done
}

primary_domain() { sed -n '/[^[:space:]]/{s/[[:space:]]//g;p;q}' "$1/domains"; }

# Directories and modes, also repairing a DIR whose owners drifted.
own_dir() {
    local dir=$1
    mkdir -p "$dir/mail/apps" "$dir/mail/users" "$dir/tls" "$dir/accounts" \
        "$dir/dovecot/run" "$dir/dovecot/state" \
        "$dir/postfix/etc" "$dir/postfix/data" "$dir/postfix/spool/private"
    chown root:root "$dir" "$dir/dovecot" "$dir/postfix" "$dir/postfix/etc" "$dir/postfix/spool" \
        "$dir/accounts"
    chmod 0711 "$dir" "$dir/dovecot" "$dir/postfix"
    chmod 0755 "$dir/postfix/spool" # Postfix wants its queue directory root-owned and open
    chmod 0700 "$dir/postfix/etc" "$dir/tls" "$dir/dovecot/state"
    # The accounts store: only root (the mail service) writes, so only root may create files
    # here (SQLite's journal); its readers need no more than to reach the database by name.
    chmod 0711 "$dir/accounts"
    if [ -e "$dir/accounts/accounts.db" ]; then
        chown postfix:dovecot "$dir/accounts/accounts.db"
        chmod 0440 "$dir/accounts/accounts.db"
    fi
    chown "$vmail:$vmail" "$dir/mail" "$dir/mail/apps" "$dir/mail/users"
    chmod 0700 "$dir/mail" "$dir/mail/apps" "$dir/mail/users"
    chown postfix: "$dir/postfix/data"
    chmod 0700 "$dir/postfix/data"
    chown postfix:root "$dir/postfix/spool/private"
    chmod 0700 "$dir/postfix/spool/private"
}

sql() { sqlite3 -init /dev/null -batch -bail "$@"; }

# The accounts store: its schema (accounts.sql, idempotent) applied, in journal mode DELETE.
apply_schema() {
    local db=$1/accounts/accounts.db mode
    sql "$db" <"$here/accounts.sql" >/dev/null || die "cannot apply accounts.sql to $db"
    mode=$(sql "$db" 'PRAGMA journal_mode;') || die "cannot read $db"
    [ "$mode" = delete ] || die "$db is in journal mode $mode, not delete"
}

# The store's readers are Postfix's processes (user postfix) and Dovecot's auth-worker (user
# dovecot), neither with supplementary groups: both must read it as they are.
check_store_readable() {
    local db=$1/accounts/accounts.db user
    for user in postfix dovecot; do
        setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups -- \
            sqlite3 -init /dev/null -batch -readonly "$db" 'SELECT count(*) FROM accounts;' \
            >/dev/null 2>&1 || die "user $user cannot read $db"
    done
}

# postmaster@<primary domain> with this password in the accounts store.
set_postmaster() {
    local dir=$1 password=$2 hash
    hash=$(hash_password "$password")
    [[ "$hash" =~ ^\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z\$]+$ ]] || die "an unexpected hash: $hash"
    sql "$dir/accounts/accounts.db" "INSERT OR REPLACE INTO accounts (address, addon, app_id,
        password) VALUES ('postmaster@$(primary_domain "$dir")', 'postmaster', NULL, '$hash');" \
        || die "cannot store the postmaster's password"
}

# A DIR made before the accounts store: its passwd-files go (the postmaster's hash moves into
# the store; the apps' accounts come back when the mail service provisions them again), and
# mailboxes DIR/mail/<domain>/ move to DIR/mail/apps/<domain>/.
migrate() {
    local dir=$1 line hash entry
    if [ -e "$dir/postmaster.passwd" ]; then
        line=$(head -n 1 "$dir/postmaster.passwd")
        hash=${line#*:}
        if [[ "$hash" =~ ^\{[A-Z0-9.-]+\}[./0-9A-Za-z\$]+$ ]]; then
            sql "$dir/accounts/accounts.db" "INSERT OR IGNORE INTO accounts (address, addon,
                app_id, password) VALUES ('postmaster@$(primary_domain "$dir")', 'postmaster',
                NULL, '$hash');" || die "cannot move the postmaster's password into the store"
        fi
        rm -f "$dir/postmaster.passwd"
    fi
    if [ -e "$dir/passwd" ]; then
        echo "cluster.sh: removing $dir/passwd: accounts now live in $dir/accounts/accounts.db" \
            "(provision the apps' mail addons again)" >&2
        rm -f "$dir/passwd"
    fi
    for entry in "$dir/mail"/*; do
        [ -d "$entry" ] || continue
        case ${entry##*/} in apps | users) continue ;; esac
        valid_domain "${entry##*/}" || continue
        [ -e "$dir/mail/apps/${entry##*/}" ] || mv "$entry" "$dir/mail/apps/"
    done
}

# A password read from stdin (twice: `doveadm pw` asks for it again when stdin is no tty, and,
# given only once, hashes something else and still exits 0), hashed as Dovecot stores it.
hash_password() {
    local password=$1 out err
    [[ "$password" != *$'\n'* ]] || die "a password must be one line"
    err=$(mktemp)
    out=$(printf '%s\n%s\n' "$password" "$password" | doveadm -O pw -s SHA512-CRYPT 2>"$err") \
        || { cat "$err" >&2; rm -f "$err"; die "doveadm pw failed"; }
    if [ -s "$err" ]; then cat "$err" >&2; rm -f "$err"; die "doveadm pw failed"; fi
    rm -f "$err"
    [[ "$out" == '{SHA512-CRYPT}$6$'* ]] || die "doveadm pw printed no SHA512-CRYPT hash"
    printf '%s' "$out"
}

# The certificate, or a fresh self-signed one for MAIL_HOSTNAME, the primary domain and loopback.
install_certificate() {
    local dir=$1 domain=$2 hostname=$3
    if [ -n "${CERT_FILE:-}" ] || [ -n "${KEY_FILE:-}" ]; then
        [ -r "${CERT_FILE:-}" ] && [ -r "${KEY_FILE:-}" ] \
            || die "CERT_FILE and KEY_FILE must both name readable files"
        install -m 0600 -o root -g root "$CERT_FILE" "$dir/tls/cert.pem"
        install -m 0600 -o root -g root "$KEY_FILE" "$dir/tls/key.pem"
    elif [ ! -s "$dir/tls/cert.pem" ] || [ ! -s "$dir/tls/key.pem" ]; then
        (umask 077
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
                -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" -subj "/CN=$hostname" \
                -addext "subjectAltName=DNS:$hostname,DNS:$domain,IP:127.0.0.1" \
                -addext "basicConstraints=critical,CA:FALSE" \
                -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
                -addext "extendedKeyUsage=serverAuth" \
                >"$dir/tls/openssl.log" 2>&1) \
            || { cat "$dir/tls/openssl.log" >&2; die "openssl could not make a certificate"; }
    fi
}

valid_domain() { [[ "$1" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$ ]]; }

# DIR/*.cf and dovecot.conf from the templates, for these ports.
render() {
    local dir=$1 port=$2 host=$3 domain hostname domains interfaces
    domain=$(primary_domain "$dir")
    hostname=${MAIL_HOSTNAME:-mail.$domain}
    domains=$(sed -e 's/[[:space:]]//g' -e '/^$/d' "$dir/domains" | paste -sd, -)
    for d in ${domains//,/ }; do valid_domain "$d" || die "not a mail domain in $dir/domains: $d"; done
    valid_domain "$hostname" || die "MAIL_HOSTNAME is no host name: $hostname"
    interfaces=$host
    case $host in 127.0.0.1) interfaces=loopback-only ;; 0.0.0.0) interfaces=all ;; esac
    local recipient_maps="sqlite:$dir/postfix/etc/recipients-sqlite.cf" milter=${MAIL_MILTER:-}
    [ -z "${MAIL_LDAP_URL:-}" ] || recipient_maps+=", ldap:$dir/postfix/etc/recipients-ldap.cf"
    [ -z "$milter" ] || [[ "$milter" =~ ^(inet:[]A-Za-z0-9.:_[-]+:[0-9]+|unix:/[A-Za-z0-9./_-]+)$ ]] \
        || die "MAIL_MILTER is no milter address (inet:HOST:PORT or unix:/PATH): $milter"
    local subst=(
        -e "s|@RECIPIENT_MAPS@|$recipient_maps|g"
        -e "s|@DIR@|$dir|g" -e "s|@HOST@|$host|g" -e "s|@INTERFACES@|$interfaces|g"
        -e "s|@DOMAIN@|$domain|g" -e "s|@DOMAINS@|$domains|g" -e "s|@HOSTNAME@|$hostname|g"
        -e "s|@RELAYHOST@|${MAIL_RELAYHOST:-}|g"
        -e "s|@CERT@|$dir/tls/cert.pem|g" -e "s|@KEY@|$dir/tls/key.pem|g"
        -e "s|@VMAIL_UID@|$vmail_uid|g" -e "s|@VMAIL_GID@|$vmail_gid|g"
        -e "s|@SUBMISSION@|$port|g" -e "s|@SMTPS@|$((port + 1))|g"
        -e "s|@IMAP@|$((port + 2))|g" -e "s|@IMAPS@|$((port + 3))|g"
        -e "s|@POP3@|$((port + 4))|g" -e "s|@POP3S@|$((port + 5))|g"
        -e "s|@SIEVE@|$((port + 6))|g" -e "s|@LMTP@|$((port + 7))|g"
    )
    (umask 077
        sed "${subst[@]}" "$here/dovecot.conf.in" >"$dir/dovecot.conf"
        sed "${subst[@]}" "$here/main.cf.in" >"$dir/postfix/etc/main.cf"
        if [ -n "$milter" ]; then
            sed "${subst[@]}" -e "s|@MILTER@|$milter|g" -e "s|@MILTER_DEFAULT_ACTION@|tempfail|g" \
                "$here/master.cf.in" >"$dir/postfix/etc/master.cf"
        else
            sed "${subst[@]}" -e '/@MILTER@/d' -e '/@MILTER_DEFAULT_ACTION@/d' \
                "$here/master.cf.in" >"$dir/postfix/etc/master.cf"
        fi
        sed "${subst[@]}" "$here/recipients-sqlite.cf.in" >"$dir/postfix/etc/recipients-sqlite.cf"
        # Read by Dovecot's auth processes before they drop privileges.
        sed "${subst[@]}" "$here/dovecot-sql.conf.ext.in" >"$dir/dovecot-sql.conf.ext"
        {
            echo "# Every sender address is owned by the login of the same name (and no other)."
            echo '/^(.+)$/ ${1}'
        } >"$dir/postfix/etc/sender-login.regexp"
        {
            echo "# Authenticated accounts send with their own address, never with the null sender."
            echo '/^<>$/ REJECT 5.7.1 the null sender is not allowed on submission'
        } >"$dir/postfix/etc/null-sender.regexp")
    if [ -n "${MAIL_LDAP_URL:-}" ]; then
        render_directory "$dir" "$domains"
        sed "${subst[@]}" "$here/dovecot-directory.conf.in" >>"$dir/dovecot.conf"
    else
        rm -f "$dir/dovecot-ldap.conf.ext" "$dir/postfix/etc/recipients-ldap.cf"
    fi
}

# The directory's configurations for Dovecot and Postfix (MAIL_LDAP_*), written with the bind
# password, so closed to all but root (and Postfix's group).
render_directory() {
    local dir=$1 domains=$2 url=$MAIL_LDAP_URL bind_dn=${MAIL_LDAP_BIND_DN:-}
    local base=${MAIL_LDAP_BASE:-ou=users,dc=cloudron} password_file=${MAIL_LDAP_BIND_PASSWORD_FILE:-}
    local password d in_domains='' filter
    [[ "$url" =~ ^ldaps?://[]A-Za-z0-9.:_[-]+/?$ ]] \
        || die "MAIL_LDAP_URL is no ldap://HOST:PORT URL: $url"
    [ -n "$bind_dn" ] || die "MAIL_LDAP_URL needs MAIL_LDAP_BIND_DN"
    [ -n "$password_file" ] && [ -r "$password_file" ] \
        || die "MAIL_LDAP_URL needs MAIL_LDAP_BIND_PASSWORD_FILE, a readable file"
    password=$(cat "$password_file")
    [ -n "$password" ] || die "the LDAP bind password in $password_file is empty"
    [[ "$password" != *[[:cntrl:]]* && "$password" != [[:space:]]* && "$password" != *[[:space:]] ]] \
        || die "the LDAP bind password must be one line without control characters or outer spaces"
    for value in "$bind_dn" "$base"; do
        [[ "$value" != *[[:cntrl:]]* && "$value" != *'"'* && "$value" != *'%'* ]] \
            || die "MAIL_LDAP_BIND_DN and MAIL_LDAP_BASE take no quotes, % or control characters"
    done
    for d in ${domains//,/ }; do in_domains+="(mail=*@$d)"; done
    # A user's mail address, in one of the mail domains, with no / (a path in the mailbox's).
    filter="(&(objectClass=user)(mail=%s)(!(mail=*/*))(|$in_domains))"
    local dnpass=${password//\\/\\\\}
    dnpass=${dnpass//\"/\\\"}
    (umask 077
        cat >"$dir/dovecot-ldap.conf.ext.tmp" <<CONF
# Directory users for Dovecot (MAIL_LDAP_URL). Written by deploy/mail/cluster.sh at every start,
# with the bind password: root's alone, read by Dovecot's auth process before it drops
# privileges. Edits here are lost.
uris = $url
ldap_version = 3
dn = $bind_dn
dnpass = "$dnpass"
base = $base
scope = subtree
deref = never
# The entry is found by its mail address, then the password checked by a bind as that entry.
auth_bind = yes
pass_filter = ${filter//%s/%Lu}
pass_attrs = =user=%L{ldap:mail}, =userdb_home=$dir/mail/users/%Ld/%Ln, =userdb_uid=$vmail_uid, =userdb_gid=$vmail_gid
user_filter = ${filter//%s/%Lu}
user_attrs = =home=$dir/mail/users/%Ld/%Ln, =uid=$vmail_uid, =gid=$vmail_gid
iterate_filter = (&(objectClass=user)(mail=*)(!(mail=*/*))(|$in_domains))
iterate_attrs = mail=user
CONF
        mv "$dir/dovecot-ldap.conf.ext.tmp" "$dir/dovecot-ldap.conf.ext"
        cat >"$dir/postfix/etc/recipients-ldap.cf.tmp" <<CONF
# Postfix's virtual_mailbox_maps over the directory (MAIL_LDAP_URL): the mail addresses of its
# users in the mail domains. Written by deploy/mail/cluster.sh at every start, with the bind
# password. Edits here are lost.
server_host = $url
version = 3
bind = yes
bind_dn = $bind_dn
bind_pw = $password
search_base = $base
scope = sub
query_filter = $filter
result_attribute = mail
domain = $domains
CONF
        chown root:postfix "$dir/postfix/etc/recipients-ldap.cf.tmp"
        chmod 0640 "$dir/postfix/etc/recipients-ldap.cf.tmp"
        mv "$dir/postfix/etc/recipients-ldap.cf.tmp" "$dir/postfix/etc/recipients-ldap.cf")
}

case "${1:-}" in
init)
    dir=$2 password_file=$3
    need_root
    ensure_vmail
    domain=${MAIL_DOMAIN:-example.test}
    valid_domain "$domain" || die "MAIL_DOMAIN is no domain name: $domain"
    (umask 077; mkdir -p "$dir")
    dir=$(cd "$dir" && pwd -P)
    own_dir "$dir"
    check_reachable "$dir"
    [ -s "$dir/domains" ] || echo "$domain" >"$dir/domains"
    chmod 0600 "$dir/domains"
    install_certificate "$dir" "$domain" "${MAIL_HOSTNAME:-mail.$domain}"
    apply_schema "$dir"
    migrate "$dir"
    password=$(cat "$password_file")
    set_postmaster "$dir" "$password"
    own_dir "$dir"
    ;;
run)
    dir=$2 port=$3
    need_root
    ensure_vmail
    [ -s "$dir/domains" ] || die "$dir is not initialised (cluster.sh init $dir PASSWORD_FILE)"
    dir=$(cd "$dir" && pwd -P)
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65528 ] \
        || die "PORT must leave room for PORT+7: $port"
    host=${MAIL_LISTEN_HOST:-127.0.0.1}
    if [ -n "${CERT_FILE:-}" ] || [ -n "${KEY_FILE:-}" ]; then
        # A renewed certificate of the operator's is picked up at every start.
        install_certificate "$dir" "$(primary_domain "$dir")" unused
    fi
    own_dir "$dir"
    check_reachable "$dir"
    apply_schema "$dir"
    migrate "$dir"
    own_dir "$dir"
    check_store_readable "$dir"
    render "$dir" "$port" "$host"
    cd "$dir"
    umask 077
    postfix=(/usr/sbin/postfix -c "$dir/postfix/etc")
    # Creates the queue's subdirectories with their owners and checks the configuration.
    "${postfix[@]}" check || die "postfix check failed"

    pids=()
    signalled=0
    stop() {
        trap - TERM INT
        for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    }
    trap 'signalled=1; stop' TERM INT
    # Dovecot first: it creates the SASL socket in Postfix's queue directory.
    dovecot -F -c "$dir/dovecot.conf" &
    pids+=($!)
    for _ in $(seq 1 300); do
        [ -S "$dir/postfix/spool/private/auth" ] && break
        kill -0 "${pids[0]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$signalled" = 1 ]; then
        wait "${pids[@]}" 2>/dev/null || true
        exit 0
    elif [ -S "$dir/postfix/spool/private/auth" ]; then
        # The master itself, in the foreground (-s keeps its stdout for maillog_file):
        # `postfix start-fg` would leave it a grandchild that TERM does not reach.
        MAIL_CONFIG="$dir/postfix/etc" /usr/lib/postfix/sbin/master -s -c "$dir/postfix/etc" &
        pids+=($!)
    else
        stop
        wait "${pids[@]}" 2>/dev/null || true
        die "dovecot did not create its auth socket"
    fi
    # Until a signal, or either server exiting; then both stop.
    status=0
    wait -n "${pids[@]}" || status=$?
    if [ "$signalled" = 1 ]; then
        status=0 # a requested stop
    else
        echo "cluster.sh: a server exited (status $status): stopping the other" >&2
        [ "$status" != 0 ] || status=1
    fi
    stop
    wait "${pids[@]}" 2>/dev/null || true
    exit "$status"
    ;;
*)
    echo "usage: $0 init DIR PASSWORD_FILE | run DIR PORT" >&2
    exit 2
    ;;
esac
