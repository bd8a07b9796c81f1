#!/usr/bin/env bash
# Brings the whole fleet up on this machine, in the foreground, with its backends:
#   - installs missing Debian packages and tools (deploy/install-deps.sh),
#   - creates .fleet/master.key and .fleet/token on first run (kept across runs),
#   - starts a private PostgreSQL on 127.0.0.1 (data under .fleet/postgresql, kept),
#   - starts a private MariaDB on 127.0.0.1 (data under .fleet/mariadb, kept),
#   - builds and starts every service, and prints how to call them.
# Ctrl-C (or SIGTERM) stops the services (they drain), then the backends.
# Secrets reach the services and backends only as files (FLEET_*_FILE, cluster.sh PASSWORD_FILE),
# never in an environment variable or on a command line, where other local users could read them.
# Ports can be moved with FLEET_UP_PG_PORT (55432), FLEET_UP_MARIADB_PORT (53306),
# FLEET_UP_POSTGRESQL_PORT (50052), FLEET_UP_MYSQL_PORT (50051) and
# FLEET_UP_COORDINATOR_PORT (50050), FLEET_UP_REDIS_PORT (50054; app instances take ports
# 46000-46999, data under .fleet/redis), FLEET_UP_MONGO_PORT (57017: SecantusDB, data under
# .fleet/mongodb), FLEET_UP_MONGODB_PORT (50053), FLEET_UP_SLAPD_PORT (53890: OpenLDAP slapd,
# data under .fleet/ldap), FLEET_UP_LDAP_PORT (50055), FLEET_UP_OIDC_PORT (50056: gRPC) and
# FLEET_UP_OIDC_HTTP_PORT (8056: the OpenID provider, issuer http://127.0.0.1:8056, state in
# .fleet/oidc.db, apps' origins http://), FLEET_UP_MAIL_SERVER_PORT (2525: Postfix + Dovecot
# on 2525-2532, mail domain FLEET_UP_MAIL_DOMAIN or example.test, data under .fleet/mail, as
# root only), FLEET_UP_MAIL_PORT (50057), FLEET_UP_MAIL_MILTER_PORT (8057: the From-header
# check Postfix calls), FLEET_UP_TURN_SERVER_PORT (3478: coturn, UDP+TCP, TLS on 3479, relays
# on 49152-49251, data under .fleet/turn, as root only), FLEET_UP_TURN_PORT (50058),
# FLEET_UP_DOCKER_PROXY_PORT (50059: the docker addon over a private dockerd, state under
# .fleet/docker, apps' endpoints on FLEET_UP_DOCKER_ENDPOINT_PORTS or 50600-50699, apps' data
# directories under .fleet/apps, as root only). Every service serves Prometheus metrics on
# 127.0.0.1 at its gRPC port + 10000 (/metrics). The coordinator keeps its app records
# in .fleet/coordinator.db (SQLite). As root, slapd runs as user openldap and SecantusDB as
# user fleet-mongodb, each in a directory only it can enter. SecantusDB is a MongoDB STAND-IN
# for development and tests only: it does not enforce all of its own access control
# (services/mongodb/README.md, which also says how to point the service at a real MongoDB).
# A second fleet beside this one (the end-to-end test, tests/e2e, runs one next to a developer's
# `make up`) moves everything else too:
#   FLEET_UP_STATE_DIR            the state directory (default .fleet in the repository); every
#                                 path above under .fleet is under it instead
#   FLEET_UP_REDIS_PORTS          the ports the redis addon's app instances take (46000-46999)
#   FLEET_UP_TURN_RELAY_PORTS     coturn's relay ports (49152-49251)
#   FLEET_UP_METRICS_OFFSET       metrics on gRPC port + this (10000)
#   FLEET_UP_BIN_DIR              run the services' binaries from this directory (e.g. a debug
#                                 build's target/debug) instead of building them with
#                                 `cargo build --release`; every fleet-* binary must be there
#   FLEET_UP_INSTALL_DEPS=0       skip deploy/install-deps.sh (default 1: run it)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=${FLEET_UP_STATE_DIR:-$root/.fleet}
mkdir -p "$state"
state=$(cd "$state" && pwd -P)
pg_port=${FLEET_UP_PG_PORT:-55432}
mariadb_port=${FLEET_UP_MARIADB_PORT:-53306}
mysql_port=${FLEET_UP_MYSQL_PORT:-50051}
postgresql_port=${FLEET_UP_POSTGRESQL_PORT:-50052}
coordinator_port=${FLEET_UP_COORDINATOR_PORT:-50050}
redis_port=${FLEET_UP_REDIS_PORT:-50054}
mongo_port=${FLEET_UP_MONGO_PORT:-57017}
mongodb_port=${FLEET_UP_MONGODB_PORT:-50053}
slapd_port=${FLEET_UP_SLAPD_PORT:-53890}
ldap_port=${FLEET_UP_LDAP_PORT:-50055}
oidc_port=${FLEET_UP_OIDC_PORT:-50056}
oidc_http_port=${FLEET_UP_OIDC_HTTP_PORT:-8056}
mail_server_port=${FLEET_UP_MAIL_SERVER_PORT:-2525}
mail_port=${FLEET_UP_MAIL_PORT:-50057}
mail_milter_port=${FLEET_UP_MAIL_MILTER_PORT:-8057}
turn_server_port=${FLEET_UP_TURN_SERVER_PORT:-3478}
turn_port=${FLEET_UP_TURN_PORT:-50058}
docker_proxy_port=${FLEET_UP_DOCKER_PROXY_PORT:-50059}
docker_endpoint_ports=${FLEET_UP_DOCKER_ENDPOINT_PORTS:-50600-50699}
redis_ports=${FLEET_UP_REDIS_PORTS:-46000-46999}
turn_relay_ports=${FLEET_UP_TURN_RELAY_PORTS:-49152-49251}
metrics_offset=${FLEET_UP_METRICS_OFFSET:-10000}
say() { echo "fleet-up: $*"; }
die() { say "$*" >&2; exit 1; }
[[ "$metrics_offset" =~ ^-?[0-9]+$ ]] || die "FLEET_UP_METRICS_OFFSET must be a whole number: $metrics_offset"

services=(fleet-coordinator fleet-mysql fleet-postgresql fleet-mongodb fleet-redis fleet-ldap
    fleet-oidc fleet-mail fleet-turn fleet-docker-proxy)
if [ -n "${FLEET_UP_BIN_DIR:-}" ]; then
    # Checked before anything starts: a missing binary is a mistake of the caller's.
    bin=$(cd "$FLEET_UP_BIN_DIR" && pwd -P) || die "FLEET_UP_BIN_DIR is no directory: $FLEET_UP_BIN_DIR"
    for service in "${services[@]}"; do
        [ -x "$bin/$service" ] || die "no $bin/$service (FLEET_UP_BIN_DIR): build it first (cargo build --bins)"
    done
fi

install_deps=${FLEET_UP_INSTALL_DEPS:-1}
# Read once: the services refuse settings of the FLEET_ prefix that are not theirs.
for variable in $(compgen -e); do
    case $variable in FLEET_UP_*) export -n "$variable" ;; esac
done

case $install_deps in
1) bash "$root/deploy/install-deps.sh" ;;
0) say "not running deploy/install-deps.sh (FLEET_UP_INSTALL_DEPS=0)" ;;
*) die "FLEET_UP_INSTALL_DEPS must be 0 or 1: $install_deps" ;;
esac

mkdir -p "$state"
chmod 755 "$state" # the backends run as their own users and need to reach their dirs
new_secret() { (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"); }
[ -s "$state/master.key" ] || { new_secret "$state/master.key"; say "created $state/master.key (back it up: every app password derives from it)"; }
[ -s "$state/token" ] || { new_secret "$state/token"; say "created $state/token"; }

# Everything started, newest first, as "pid:signal": services drain on TERM, PostgreSQL
# shuts down fast on INT, MariaDB on TERM.
started=()
pids=()
track() { started=("$1:$2" "${started[@]}"); pids=("$1" "${pids[@]}"); }
stop_all() { # exit status
    trap - INT TERM EXIT
    say "stopping"
    # Newest first: services drain their in-flight calls before the backends go.
    for entry in "${started[@]}"; do
        kill "-${entry#*:}" "${entry%%:*}" 2>/dev/null || true
        wait "${entry%%:*}" 2>/dev/null || true
    done
    say "stopped"
    exit "$1"
}
trap 'stop_all 0' INT TERM
trap 'stop_all $?' EXIT

wait_port() { # name port pid
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { say "$1 exited during start"; return 1; }
        sleep 0.1
    done
    say "$1 did not listen on port $2"; return 1
}

# --- PostgreSQL (backend of the postgresql addon)
pg_dir="$state/postgresql"
if [ ! -d "$pg_dir/data" ]; then
    mkdir -p "$pg_dir"
    new_secret "$pg_dir/superuser-password"
    "$root/deploy/postgresql/cluster.sh" init "$pg_dir" "$pg_dir/superuser-password"
    say "initialised PostgreSQL in $pg_dir"
fi
"$root/deploy/postgresql/cluster.sh" run "$pg_dir" "$pg_port" >"$pg_dir/server.log" 2>&1 &
track $! INT
wait_port PostgreSQL "$pg_port" "${pids[0]}"
until pg_isready -q -h 127.0.0.1 -p "$pg_port"; do sleep 0.1; done
say "PostgreSQL on 127.0.0.1:$pg_port (log: $pg_dir/server.log)"

# --- MariaDB (backend of the mysql addon)
maria_dir="$state/mariadb"
if [ ! -d "$maria_dir/data" ]; then
    mkdir -p "$maria_dir"
    new_secret "$maria_dir/admin-password"
    "$root/deploy/mysql/cluster.sh" init "$maria_dir" "$maria_dir/admin-password"
    say "initialised MariaDB in $maria_dir"
fi
"$root/deploy/mysql/cluster.sh" run "$maria_dir" "$mariadb_port" >"$maria_dir/server.log" 2>&1 &
track $! TERM
wait_port MariaDB "$mariadb_port" "${pids[0]}"
say "MariaDB on 127.0.0.1:$mariadb_port (log: $maria_dir/server.log)"

# --- SecantusDB (MongoDB-wire backend of the mongodb addon)
mongo_dir="$state/mongodb"
if [ ! -d "$mongo_dir/data" ]; then
    mkdir -p "$mongo_dir"
    new_secret "$mongo_dir/root-password"
    "$root/deploy/mongodb/cluster.sh" init "$mongo_dir" "$mongo_dir/root-password"
    say "initialised SecantusDB in $mongo_dir"
fi
say "WARNING: SecantusDB is a MongoDB stand-in for development and tests only. It does not"
say "WARNING: enforce all of its own access control (an app can write other apps' databases"
say "WARNING: through bulkWrite, move collections into them, kill every session). Do not hold"
say "WARNING: real data in it; point fleet-mongodb at a real MongoDB (FLEET_MONGODB_ADMIN_URL,"
say "WARNING: services/mongodb/README.md)."
"$root/deploy/mongodb/cluster.sh" run "$mongo_dir" "$mongo_port" >"$mongo_dir/server.log" 2>&1 &
track $! TERM
wait_port SecantusDB "$mongo_port" "${pids[0]}"
say "SecantusDB (MongoDB stand-in, development and tests only) on 127.0.0.1:$mongo_port (log: $mongo_dir/server.log)"

# --- OpenLDAP slapd (backend of the ldap addon and the user directory)
ldap_dir="$state/ldap"
if [ ! -d "$ldap_dir/data" ]; then
    mkdir -p "$ldap_dir"
    new_secret "$ldap_dir/admin-password"
    "$root/deploy/ldap/cluster.sh" init "$ldap_dir" "$ldap_dir/admin-password"
    say "initialised slapd in $ldap_dir"
fi
"$root/deploy/ldap/cluster.sh" run "$ldap_dir" "$slapd_port" >"$ldap_dir/server.log" 2>&1 &
track $! TERM
wait_port slapd "$slapd_port" "${pids[0]}"
say "slapd on 127.0.0.1:$slapd_port (log: $ldap_dir/server.log)"

# --- Postfix + Dovecot (backend of the mail addons); directory users log in against slapd.
# Both masters start only as root: without root the mail addons are left out.
mail_dir="$state/mail"
mail_url=()
if [ "$(id -u)" = 0 ]; then
    if [ ! -s "$mail_dir/domains" ]; then
        mkdir -p "$mail_dir"
        new_secret "$mail_dir/postmaster-password"
        MAIL_DOMAIN="${FLEET_UP_MAIL_DOMAIN:-example.test}" \
            "$root/deploy/mail/cluster.sh" init "$mail_dir" "$mail_dir/postmaster-password"
        say "initialised the mail server in $mail_dir (postmaster's password: $mail_dir/postmaster-password)"
    fi
    MAIL_LDAP_URL="ldap://127.0.0.1:$slapd_port" MAIL_LDAP_BIND_DN="cn=admin,dc=cloudron" \
        MAIL_LDAP_BIND_PASSWORD_FILE="$ldap_dir/admin-password" \
        MAIL_MILTER="inet:127.0.0.1:$mail_milter_port" \
        "$root/deploy/mail/cluster.sh" run "$mail_dir" "$mail_server_port" >"$state/mail-server.log" 2>&1 &
    track $! TERM
    wait_port "the mail server" "$mail_server_port" "${pids[0]}"
    say "Postfix + Dovecot on 127.0.0.1:$mail_server_port-$((mail_server_port + 6)) (log: $state/mail-server.log)"
    mail_url=(FLEET_COORDINATOR_MAIL_URL="http://127.0.0.1:$mail_port")
else
    say "the mail addons are left out: Postfix and Dovecot start only as root"
fi

# --- coturn (backend of the turn addon). It starts as root too.
turn_dir="$state/turn"
turn_url=()
if [ "$(id -u)" = 0 ]; then
    if [ ! -s "$turn_dir/db/turndb" ]; then
        mkdir -p "$turn_dir"
        "$root/deploy/turn/cluster.sh" init "$turn_dir"
        say "initialised coturn in $turn_dir"
    fi
    TURN_RELAY_PORTS="$turn_relay_ports" "$root/deploy/turn/cluster.sh" run "$turn_dir" "$turn_server_port" >"$state/turn-server.log" 2>&1 &
    track $! TERM
    wait_port coturn "$turn_server_port" "${pids[0]}"
    say "coturn on 127.0.0.1:$turn_server_port (TLS $((turn_server_port + 1)); log: $state/turn-server.log)"
    turn_url=(FLEET_COORDINATOR_TURN_URL="http://127.0.0.1:$turn_port")
else
    say "the turn addon is left out: coturn starts only as root"
fi

# --- dockerd (backend of the docker addon), private to the fleet. It starts as root too.
docker_dir="$state/docker"
docker_url=()
if [ "$(id -u)" = 0 ]; then
    ENGINE_ADDRESS_POOL=auto "$root/deploy/docker-proxy/engine.sh" run "$docker_dir" \
        >"$state/docker-engine.log" 2>&1 &
    track $! TERM
    "$root/deploy/docker-proxy/engine.sh" wait "$docker_dir" 60
    # A small image to try the addon with (no image can be pulled through the proxy).
    "$root/deploy/docker-proxy/engine.sh" import-busybox "$docker_dir"
    say "dockerd on unix://$docker_dir/docker.sock (log: $state/docker-engine.log; load images with DOCKER_HOST=unix://$docker_dir/docker.sock docker load)"
    mkdir -p "$state/apps"
    docker_url=(FLEET_COORDINATOR_DOCKER_PROXY_URL="http://127.0.0.1:$docker_proxy_port")
else
    say "the docker addon is left out: dockerd starts only as root"
fi

# --- the services
if [ -n "${FLEET_UP_BIN_DIR:-}" ]; then
    say "running the services from $bin (FLEET_UP_BIN_DIR, not built here)"
else
    say "building the services (cargo build --release)"
    cargo build --release --bins --manifest-path "$root/Cargo.toml"
    bin="$root/target/release"
fi
common=(FLEET_MASTER_KEY_FILE="$state/master.key" FLEET_API_TOKEN_FILE="$state/token")

env "${common[@]}" FLEET_LISTEN="127.0.0.1:$postgresql_port" FLEET_METRICS_LISTEN="127.0.0.1:$((postgresql_port + metrics_offset))" \
    FLEET_POSTGRESQL_ADMIN_URL="postgres://postgres@127.0.0.1:$pg_port/postgres" \
    FLEET_POSTGRESQL_ADMIN_PASSWORD_FILE="$pg_dir/superuser-password" \
    "$bin/fleet-postgresql" &
track $! TERM
wait_port fleet-postgresql "$postgresql_port" "${pids[0]}"

env "${common[@]}" FLEET_LISTEN="127.0.0.1:$mysql_port" FLEET_METRICS_LISTEN="127.0.0.1:$((mysql_port + metrics_offset))" \
    FLEET_MYSQL_ADMIN_URL="mysql://fleet_admin@127.0.0.1:$mariadb_port/" \
    FLEET_MYSQL_ADMIN_PASSWORD_FILE="$maria_dir/admin-password" \
    "$bin/fleet-mysql" &
track $! TERM
wait_port fleet-mysql "$mysql_port" "${pids[0]}"

env "${common[@]}" FLEET_LISTEN="127.0.0.1:$mongodb_port" FLEET_METRICS_LISTEN="127.0.0.1:$((mongodb_port + metrics_offset))" \
    FLEET_MONGODB_ADMIN_URL="mongodb://root@127.0.0.1:$mongo_port/?authSource=admin" \
    FLEET_MONGODB_ADMIN_PASSWORD_FILE="$mongo_dir/root-password" \
    "$bin/fleet-mongodb" &
track $! TERM
wait_port fleet-mongodb "$mongodb_port" "${pids[0]}"

env "${common[@]}" FLEET_LISTEN="127.0.0.1:$redis_port" FLEET_METRICS_LISTEN="127.0.0.1:$((redis_port + metrics_offset))" \
    FLEET_REDIS_DATA_DIR="$state/redis" FLEET_REDIS_STOP_INSTANCES_ON_EXIT=true FLEET_REDIS_PORTS="$redis_ports" \
    "$bin/fleet-redis" &
track $! TERM
wait_port fleet-redis "$redis_port" "${pids[0]}"

env "${common[@]}" FLEET_LISTEN="127.0.0.1:$ldap_port" FLEET_METRICS_LISTEN="127.0.0.1:$((ldap_port + metrics_offset))" \
    FLEET_LDAP_ADMIN_URL="ldap://127.0.0.1:$slapd_port" \
    FLEET_LDAP_ADMIN_PASSWORD_FILE="$ldap_dir/admin-password" \
    "$bin/fleet-ldap" &
track $! TERM
wait_port fleet-ldap "$ldap_port" "${pids[0]}"

# The provider reads users as the directory administrator here; in production give it an
# account that only reads ou=users and ou=groups (services/oidc/README.md).
env "${common[@]}" FLEET_LISTEN="127.0.0.1:$oidc_port" FLEET_METRICS_LISTEN="127.0.0.1:$((oidc_port + metrics_offset))" \
    FLEET_OIDC_ISSUER="http://127.0.0.1:$oidc_http_port" \
    FLEET_OIDC_HTTP_LISTEN="127.0.0.1:$oidc_http_port" \
    FLEET_OIDC_STATE_URL="sqlite://$state/oidc.db" \
    FLEET_OIDC_LDAP_URL="ldap://127.0.0.1:$slapd_port" \
    FLEET_OIDC_LDAP_BIND_PASSWORD_FILE="$ldap_dir/admin-password" \
    FLEET_OIDC_APP_SCHEME=http \
    "$bin/fleet-oidc" &
track $! TERM
wait_port fleet-oidc "$oidc_port" "${pids[0]}"
wait_port "fleet-oidc (provider)" "$oidc_http_port" "${pids[0]}"

if [ ${#mail_url[@]} -gt 0 ]; then
    env "${common[@]}" FLEET_LISTEN="127.0.0.1:$mail_port" FLEET_METRICS_LISTEN="127.0.0.1:$((mail_port + metrics_offset))" \
        FLEET_MAIL_DIR="$mail_dir" FLEET_MAIL_PORT="$mail_server_port" \
        FLEET_MAIL_MILTER_LISTEN="127.0.0.1:$mail_milter_port" \
        FLEET_MAIL_LDAP_URL="ldap://127.0.0.1:$slapd_port" \
        FLEET_MAIL_LDAP_BIND_PASSWORD_FILE="$ldap_dir/admin-password" \
        "$bin/fleet-mail" &
    track $! TERM
    wait_port fleet-mail "$mail_port" "${pids[0]}"
fi

if [ ${#turn_url[@]} -gt 0 ]; then
    env "${common[@]}" FLEET_LISTEN="127.0.0.1:$turn_port" FLEET_METRICS_LISTEN="127.0.0.1:$((turn_port + metrics_offset))" \
        FLEET_TURN_DIR="$turn_dir" FLEET_TURN_PORT="$turn_server_port" \
        "$bin/fleet-turn" &
    track $! TERM
    wait_port fleet-turn "$turn_port" "${pids[0]}"
fi

if [ ${#docker_url[@]} -gt 0 ]; then
    env "${common[@]}" FLEET_LISTEN="127.0.0.1:$docker_proxy_port" FLEET_METRICS_LISTEN="127.0.0.1:$((docker_proxy_port + metrics_offset))" \
        FLEET_DOCKER_PROXY_ENGINE_SOCKET="$docker_dir/docker.sock" \
        FLEET_DOCKER_PROXY_STATE_DIR="$state/docker-proxy" \
        FLEET_DOCKER_PROXY_APPS_DATA_DIR="$state/apps" \
        FLEET_DOCKER_PROXY_ENDPOINT_PORTS="$docker_endpoint_ports" \
        "$bin/fleet-docker-proxy" &
    track $! TERM
    wait_port fleet-docker-proxy "$docker_proxy_port" "${pids[0]}"
fi

env "${common[@]}" "${mail_url[@]}" "${turn_url[@]}" "${docker_url[@]}" FLEET_LISTEN="127.0.0.1:$coordinator_port" FLEET_METRICS_LISTEN="127.0.0.1:$((coordinator_port + metrics_offset))" \
    FLEET_COORDINATOR_MYSQL_URL="http://127.0.0.1:$mysql_port" \
    FLEET_COORDINATOR_POSTGRESQL_URL="http://127.0.0.1:$postgresql_port" \
    FLEET_COORDINATOR_REDIS_URL="http://127.0.0.1:$redis_port" \
    FLEET_COORDINATOR_MONGODB_URL="http://127.0.0.1:$mongodb_port" \
    FLEET_COORDINATOR_LDAP_URL="http://127.0.0.1:$ldap_port" \
    FLEET_COORDINATOR_OIDC_URL="http://127.0.0.1:$oidc_port" \
    FLEET_COORDINATOR_STATE_URL="sqlite://$state/coordinator.db" \
    FLEET_COORDINATOR_API_ORIGIN="${FLEET_UP_API_ORIGIN:-https://my.localhost}" \
    "$bin/fleet-coordinator" &
track $! TERM
wait_port fleet-coordinator "$coordinator_port" "${pids[0]}"

cat <<EOT

fleet-up: the fleet is up. Services (gRPC, reflection on; calls need the bearer token;
Prometheus metrics at http://127.0.0.1:<port + $metrics_offset>/metrics):
  coordinator  127.0.0.1:$coordinator_port
  ldap         127.0.0.1:$ldap_port (also fleet.directory.v1.Directory; slapd: ldap://127.0.0.1:$slapd_port)
  mail         127.0.0.1:$mail_port (root only; SMTP submission 127.0.0.1:$mail_server_port, IMAP $((mail_server_port + 2)))
  turn         127.0.0.1:$turn_port (root only; coturn 127.0.0.1:$turn_server_port)
  docker-proxy 127.0.0.1:$docker_proxy_port (root only; apps' Docker endpoints on 127.0.0.1:$docker_endpoint_ports)
  mysql        127.0.0.1:$mysql_port
  oidc         127.0.0.1:$oidc_port (OpenID provider: http://127.0.0.1:$oidc_http_port/.well-known/openid-configuration)
  mongodb      127.0.0.1:$mongodb_port (backend: SecantusDB, a stand-in for development and tests only)
  postgresql   127.0.0.1:$postgresql_port
  redis        127.0.0.1:$redis_port

Try:
  grpcurl -plaintext -H "authorization: Bearer \$(cat $state/token)" \\
      -d '{"app_id": "blog", "app_domain": "blog.localhost", "addons": {"mysql": {}, "postgresql": {}, "redis": {}, "localstorage": {}}}' \\
      127.0.0.1:$coordinator_port fleet.coordinator.v1.Coordinator/InstallApp
  grpcurl -plaintext -H "authorization: Bearer \$(cat $state/token)" \\
      127.0.0.1:$coordinator_port fleet.coordinator.v1.Coordinator/GetFleetStatus
  grpcurl -plaintext 127.0.0.1:$postgresql_port list
  grpcurl -plaintext -H "authorization: Bearer \$(cat $state/token)" \\
      -d '{"app_id": "my-app", "postgresql": {"extensions": ["hstore"]}}' \\
      127.0.0.1:$postgresql_port fleet.addon.v1.Addon/Provision
  grpcurl -plaintext -H "authorization: Bearer \$(cat $state/token)" \\
      -d '{"app_id": "my-app", "addon": "postgresql"}' \\
      127.0.0.1:$postgresql_port fleet.addon.v1.Addon/Deprovision
  grpcurl -plaintext -H "authorization: Bearer \$(cat $state/token)" \\
      -d '{"app_id": "my-app", "mysql": {"multiple_databases": true}}' \\
      127.0.0.1:$mysql_port fleet.addon.v1.Addon/Provision
  grpcurl -plaintext -H "authorization: Bearer \$(cat $state/token)" \\
      -d '{"username": "ada", "email": "ada@example.com", "password": "a long password"}' \\
      127.0.0.1:$ldap_port fleet.directory.v1.Directory/CreateUser
  grpcurl -plaintext -H "authorization: Bearer \$(cat $state/token)" \\
      -d '{"app_id": "chat", "app_domain": "chat.localhost", "oidc": {"login_redirect_uris": ["/callback"]}}' \\
      127.0.0.1:$oidc_port fleet.addon.v1.Addon/Provision
  (then sign in by hand: services/oidc/README.md)
  grpcurl -plaintext -H "authorization: Bearer \$(cat $state/token)" \\
      -d '{"app_id": "blog", "app_domain": "blog.localhost", "addons": {"sendmail": {}, "recvmail": {}}}' \\
      127.0.0.1:$coordinator_port fleet.coordinator.v1.Coordinator/InstallApp
  (then send and read mail with the bundle: services/mail/README.md)

Logs (JSON) follow below. Ctrl-C stops everything.
EOT
wait -n "${pids[@]}" || true
say "a process of the fleet exited on its own; stopping the rest"
exit 1
