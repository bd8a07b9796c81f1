#!/usr/bin/env bash
# A private Postfix + Dovecot for the mail addons (sendmail, recvmail, email), configured in one
# place for `make up`, the compose file and the Rust test kit (shared/src/testkit/mail.rs):
#   cluster.sh init DIR PASSWORD_FILE   a self-signed certificate (unless CERT_FILE and KEY_FILE
#                                       name the operator's), the mail domain MAIL_DOMAIN
#                                       (default example.test) in DIR/domains, an empty
#                                       DIR/passwd, and postmaster@<domain> with that password
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
# Accounts are full addresses in DIR/passwd, Dovecot's passwd-file: `address:{SHA512-CRYPT}...`
# lines (any scheme `doveadm pw` makes; never a clear password), which the mail service
# replaces atomically (temp file + rename, mode 0640, group dovecot, like the one init makes).
# Dovecot re-reads it on its own, at most once a second. Mail of user@domain is kept in
# DIR/mail/domain/user/Maildir. DIR/domains lists the mail domains, one a line, the primary
# first; Postfix accepts mail for all of them. An authenticated account may only send as its
# own address: Postfix's sender login map (DIR/postfix/etc/sender-login.regexp) makes every
# address owned by the login of the same name, so any other envelope sender (or <>) is refused.
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
    mkdir -p "$dir/mail" "$dir/tls" "$dir/dovecot/run" "$dir/dovecot/state" \
        "$dir/postfix/etc" "$dir/postfix/data" "$dir/postfix/spool/private"
    chown root:root "$dir" "$dir/dovecot" "$dir/postfix" "$dir/postfix/etc" "$dir/postfix/spool"
    chmod 0711 "$dir" "$dir/dovecot" "$dir/postfix"
    chmod 0755 "$dir/postfix/spool" # Postfix wants its queue directory root-owned and open
    chmod 0700 "$dir/postfix/etc" "$dir/tls" "$dir/dovecot/state"
    chown "$vmail:$vmail" "$dir/mail"
    chmod 0700 "$dir/mail"
    chown postfix: "$dir/postfix/data"
    chmod 0700 "$dir/postfix/data"
    chown postfix:root "$dir/postfix/spool/private"
    chmod 0700 "$dir/postfix/spool/private"
    local f
    for f in passwd postmaster.passwd; do
        [ -e "$dir/$f" ] || continue
        chown root:dovecot "$dir/$f"
        chmod 0640 "$dir/$f"
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
    local subst=(
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
        sed "${subst[@]}" "$here/master.cf.in" >"$dir/postfix/etc/master.cf"
        {
            echo "# Every sender address is owned by the login of the same name (and no other)."
            echo '/^(.+)$/ ${1}'
        } >"$dir/postfix/etc/sender-login.regexp"
        {
            echo "# Authenticated accounts send with their own address, never with the null sender."
            echo '/^<>$/ REJECT 5.7.1 the null sender is not allowed on submission'
        } >"$dir/postfix/etc/null-sender.regexp")
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
    [ -e "$dir/passwd" ] || : >"$dir/passwd"
    password=$(cat "$password_file")
    printf 'postmaster@%s:%s\n' "$domain" "$(hash_password "$password")" >"$dir/postmaster.passwd.tmp"
    mv "$dir/postmaster.passwd.tmp" "$dir/postmaster.passwd"
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
