#!/usr/bin/env bash
# The fleet under docker compose, end to end, in a PRIVATE Docker Engine (its own data root
# and socket, started and removed here; no system engine is touched):
#   compose-test.sh          (run by `cargo test -p fleet-e2e --test compose`, i.e. `make test`)
# 1. starts dockerd (deploy/docker-proxy/engine.sh) under a temporary directory;
# 2. deploy/images.sh into it (images cached by their inputs; the base's tarball is cached in
#    ${XDG_CACHE_HOME:-~/.cache}/addon-fleet, so only the first run on a machine debootstraps);
# 3. `docker-compose -p <unique> up -d` of a verbatim copy of deploy/docker-compose.yml next to
#    its own secrets (deploy/init-secrets.sh into the temporary directory; the checkout is
#    never written) and free host ports, then waits until every container is healthy;
# 4. installs an app with postgresql, redis and mysql through the published coordinator with
#    grpcurl and checks its env with psql, redis-cli and mariadb (the backends' own clients) as
#    the app would;
# 5. `up -d --scale postgresql=3`, then 50 InstallApp calls (4 at a time) while one postgresql
#    replica is killed (`docker kill`) mid-way: no install may fail;
#    Prometheus must scrape all three replicas, and every surviving one must have served
#    Provision calls (the coordinator spreads them);
# 6. no orphan: every service's List (grpcurl at each live replica's container address) equals
#    the apps the coordinator's ListApps says have that addon, and PostgreSQL's databases are
#    exactly one per such app;
# 7. `down -v`;
# 8. the same definitions as a swarm stack (deploy/stack.sh) on a single-node swarm in this
#    engine: every service healthy, postgresql as 2 replicas (both serving installs, as the
#    stack's Prometheus shows), 6 apps installed through the coordinator, psql as one of them;
#    `stack.sh rm`, `swarm leave`;
# then stops the engine and removes everything it made (also on failure).
# Exit 0: passed. Exit 77: skipped (no root, no dockerd...), with the reason on the last line
# ("compose test SKIPPED: ..."). Anything else: failed, with what failed.
# The API token is made for this run and removed with it; grpcurl gets it by -expand-headers
# from its own environment (a process's environment is readable by its user only, unlike its
# command line).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
installs=${COMPOSE_TEST_INSTALLS:-50}
parallel=${COMPOSE_TEST_PARALLEL:-4}
started_at=$SECONDS

skip() { echo "compose test SKIPPED: $*"; exit 77; }
say() { echo "compose-test [$((SECONDS - started_at))s]: $*"; }
fail() { echo "compose-test FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "not root (a private dockerd needs root)"
command -v dockerd >/dev/null || skip "no dockerd (deploy/install-deps.sh installs docker.io)"
for tool in docker docker-compose grpcurl psql redis-cli mariadb jq curl cargo; do
    command -v "$tool" >/dev/null || skip "no $tool (deploy/install-deps.sh)"
done
cache=${FLEET_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/addon-fleet}
if [ ! -s "$cache/bookworm-minbase.tar" ]; then
    command -v debootstrap >/dev/null || skip "no debootstrap and no cached base in $cache"
fi

# A short path: the engine's sockets live under it.
work=$(mktemp -d /var/tmp/fleet-compose.XXXXXX)
chmod 711 "$work"
engine=$work/engine
project=fleetct$(basename "$work" | tr -dc 'a-z0-9' | tr 'A-Z' 'a-z')
export DOCKER_HOST=unix://$engine/docker.sock DOCKER_CONFIG=$work/client
compose=(docker-compose -p "$project" -f "$work/compose/docker-compose.yml")
engine_pid=

cleanup() {
    local rc=$?
    set +e
    if [ $rc != 0 ] && [ $rc != 77 ] && [ -S "$engine/docker.sock" ]; then
        echo "--- containers" >&2
        docker ps -a --format '{{.Names}} {{.Status}}' >&2
        for c in $( (docker ps -a --filter health=unhealthy --format '{{.Names}}'
            docker ps -a --filter status=exited --format '{{.Names}}'
            docker ps -a --filter status=restarting --format '{{.Names}}') 2>/dev/null | sort -u); do
            echo "--- logs of $c (tail)" >&2
            docker logs --tail 30 "$c" 2>&1 | sed 's/^/    /' >&2
        done
    fi
    if [ -n "${swarm:-}" ]; then
        docker swarm leave --force >/dev/null 2>&1
    fi
    if [ -S "$engine/docker.sock" ] && [ -f "$work/compose/docker-compose.yml" ]; then
        "${compose[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1
    fi
    if [ -n "$engine_pid" ]; then
        kill -TERM "$engine_pid" 2>/dev/null
        for _ in $(seq 1 300); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$engine_pid" 2>/dev/null
        wait "$engine_pid" 2>/dev/null
        bash "$repo/deploy/docker-proxy/engine.sh" clean "$engine" >/dev/null 2>&1
    fi
    rm -rf "$work"
    say "cleaned up (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# 1. The engine: overlay2 where the kernel and the file system allow it (vfs copies every
# layer and every container in full: the whole fleet would take ~15 GB).
storage=vfs
if grep -qw overlay /proc/filesystems \
    && [[ "$(stat -f -c %T "$work")" =~ ^(ext2/ext3|xfs|btrfs)$ ]]; then
    storage=overlay2
fi
ENGINE_STORAGE_DRIVER=$storage ENGINE_ADDRESS_POOL=auto bash "$repo/deploy/docker-proxy/engine.sh" run "$engine" \
    >"$work/engine.log" 2>&1 &
engine_pid=$!
bash "$repo/deploy/docker-proxy/engine.sh" wait "$engine" 60 \
    || { tail -20 "$work/engine.log" >&2; skip "dockerd did not start (log above)"; }
say "private dockerd up ($engine, storage $storage)"

# 2. The images.
bash "$repo/deploy/images.sh" | sed 's/^/    /'
say "images ready"

# 3. Up, with this run's secrets and free host ports.
mkdir -p "$work/compose"
cp "$repo/deploy/docker-compose.yml" "$work/compose/docker-compose.yml"
bash "$repo/deploy/init-secrets.sh" "$work/compose/secrets" >/dev/null
# Free ranges of ports on loopback: N consecutive ports that can be bound (TCP and UDP).
free_ports() { # COUNT -> "FIRST-LAST"
    python3 - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(500):
    first = random.randint(20000, 39000)
    socks = []
    try:
        for p in range(first, first + n):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("0.0.0.0", p))
        print(f"{first}-{first + n - 1}")
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
else:
    sys.exit("no free port range")
PY
}
port_of() { echo "${1%-*}"; }
export FLEET_COORDINATOR_HOST_PORT FLEET_OIDC_HOST_PORT FLEET_MAIL_HOST_PORTS FLEET_TURN_PORT \
    FLEET_TURN_TLS_PORT FLEET_TURN_RELAY_PORTS FLEET_DOCKER_ENDPOINT_PORTS FLEET_PROMETHEUS_PORT \
    FLEET_APPS_DATA_DIR
FLEET_COORDINATOR_HOST_PORT=$(port_of "$(free_ports 1)")
FLEET_OIDC_HOST_PORT=$(port_of "$(free_ports 1)")
FLEET_PROMETHEUS_PORT=$(port_of "$(free_ports 1)")
FLEET_MAIL_HOST_PORTS=$(free_ports 7)
turn=$(free_ports 2)
FLEET_TURN_PORT=${turn%-*} FLEET_TURN_TLS_PORT=${turn#*-}
FLEET_TURN_RELAY_PORTS=$(free_ports 4)
FLEET_DOCKER_ENDPOINT_PORTS=$(free_ports 4)
FLEET_APPS_DATA_DIR=$work/compose/apps-data
mkdir -p "$FLEET_APPS_DATA_DIR"
# The docker-engine service is privileged (a dockerd in a container). Where this host cannot
# start privileged containers (docker 20.10 asks for every capability it knows, and a host
# whose own capability bounding set lacks one, e.g. CAP_SYS_RESOURCE in some VMs, refuses),
# an override gives it every capability the host has instead, unconfined: the same engine,
# minus what the host cannot grant.
if ! docker run --rm --privileged --network none addon-fleet/base:latest true >/dev/null 2>&1; then
    missing=$(python3 - <<'PY'
names = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
         "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
         "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
         "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
         "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
         "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"]
bounding = next(int(l.split()[1], 16) for l in open("/proc/self/status") if l.startswith("CapBnd:"))
print(", ".join(n for i, n in enumerate(names) if not bounding >> i & 1))
PY
)
    say "privileged containers fail here; docker-engine gets every capability but: $missing"
    cat >"$work/compose/unprivileged-engine.yml" <<EOF
version: "3.8"
services:
  docker-engine:
    privileged: false
    cap_add: [ALL]
    cap_drop: [$missing]
    security_opt: [seccomp=unconfined, apparmor=unconfined]
EOF
    compose+=(-f "$work/compose/unprivileged-engine.yml")
fi
"${compose[@]}" config -q
up_started=$SECONDS
"${compose[@]}" up -d >"$work/up.log" 2>&1 || { cat "$work/up.log" >&2; fail "docker-compose up"; }

# Every container of the project healthy (a container without a healthcheck: running).
wait_healthy() { # SECONDS
    local deadline=$((SECONDS + $1)) states
    while :; do
        states=$(docker ps -a --filter "label=com.docker.compose.project=$project" \
            --format '{{.Names}} {{.Status}}')
        if ! grep -qv '(healthy)' <<<"$states"; then return 0; fi
        if grep -q 'Exited\|Dead' <<<"$states"; then echo "$states" >&2; return 1; fi
        if [ $SECONDS -ge $deadline ]; then echo "$states" >&2; return 1; fi
        sleep 2
    done
}
wait_healthy 600 || fail "not every container became healthy"
say "up and healthy: $(docker ps -q --filter "label=com.docker.compose.project=$project" | wc -l) containers in $((SECONDS - up_started))s"

# 4. One app through the coordinator, its env checked with the backends' own clients.
export FLEET_TEST_TOKEN
FLEET_TEST_TOKEN=$(cat "$work/compose/secrets/token")
coordinator=127.0.0.1:$FLEET_COORDINATOR_HOST_PORT
call() { # ADDRESS METHOD JSON
    grpcurl -plaintext -max-time 60 -expand-headers -H 'authorization: Bearer ${FLEET_TEST_TOKEN}' \
        -d "$3" "$1" "$2"
}
install() { # APP_ID
    call "$coordinator" fleet.coordinator.v1.Coordinator/InstallApp \
        "{\"app_id\":\"$1\",\"app_domain\":\"$1.example.com\",\"addons\":{${2:-}\"postgresql\":{},\"redis\":{}}}"
}
container_ip() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | awk '{print $1}'; }
containers_of() { docker ps -q --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=$1"; }

install first-app '"mysql":{},' >"$work/first.json" || fail "InstallApp first-app"
env_of() { jq -r --arg k "$2" '.env[$k] // empty' "$1"; }
for key in CLOUDRON_POSTGRESQL_HOST CLOUDRON_POSTGRESQL_PORT CLOUDRON_POSTGRESQL_USERNAME \
    CLOUDRON_POSTGRESQL_PASSWORD CLOUDRON_POSTGRESQL_DATABASE CLOUDRON_REDIS_HOST \
    CLOUDRON_REDIS_PORT CLOUDRON_REDIS_PASSWORD; do
    [ -n "$(env_of "$work/first.json" "$key")" ] || fail "first-app's env has no $key"
done
[ "$(env_of "$work/first.json" CLOUDRON_POSTGRESQL_HOST)" = postgres ] \
    || fail "CLOUDRON_POSTGRESQL_HOST is not the postgres service's name"
# The app's own credentials, from a file (never an argument): psql at the postgres container.
pg_ip=$(container_ip "$(containers_of postgres)")
(umask 077; printf '*:*:*:%s:%s\n' "$(env_of "$work/first.json" CLOUDRON_POSTGRESQL_USERNAME)" \
    "$(env_of "$work/first.json" CLOUDRON_POSTGRESQL_PASSWORD)" >"$work/app.pgpass")
got=$(PGPASSFILE=$work/app.pgpass PGCONNECT_TIMEOUT=10 psql -X -q -At -v ON_ERROR_STOP=1 \
    "host=$pg_ip port=$(env_of "$work/first.json" CLOUDRON_POSTGRESQL_PORT) user=$(env_of "$work/first.json" CLOUDRON_POSTGRESQL_USERNAME) dbname=$(env_of "$work/first.json" CLOUDRON_POSTGRESQL_DATABASE)" \
    -c 'CREATE TABLE notes (body text); INSERT INTO notes VALUES ($$hello$$); SELECT body FROM notes;') \
    || fail "psql as first-app"
[ "$got" = hello ] || fail "psql as first-app read back '$got'"
say "first-app: psql as the app works (its own database at $pg_ip)"
redis_ip=$(container_ip "$(containers_of redis)")
got=$(env_of "$work/first.json" CLOUDRON_REDIS_PASSWORD | redis-cli --no-auth-warning --askpass \
    -h "$redis_ip" -p "$(env_of "$work/first.json" CLOUDRON_REDIS_PORT)" SET greeting hi 2>&1) \
    || fail "redis-cli as first-app: $got"
[ "$got" = OK ] || fail "redis-cli SET as first-app answered '$got'"
got=$(echo wrong-password | redis-cli --no-auth-warning --askpass -h "$redis_ip" \
    -p "$(env_of "$work/first.json" CLOUDRON_REDIS_PORT)" GET greeting 2>&1 || true)
[ "$got" != hi ] || fail "redis answered a wrong password"
say "first-app: redis-cli as the app works, a wrong password does not"
# And MySQL (MariaDB) with its own client, the password in a defaults file.
mysql_ip=$(container_ip "$(containers_of mariadb)")
(umask 077; printf '[client]\nuser=%s\npassword=%s\n' "$(env_of "$work/first.json" CLOUDRON_MYSQL_USERNAME)" \
    "$(env_of "$work/first.json" CLOUDRON_MYSQL_PASSWORD)" >"$work/app.my.cnf")
got=$(mariadb --defaults-extra-file="$work/app.my.cnf" -h "$mysql_ip" \
    -P "$(env_of "$work/first.json" CLOUDRON_MYSQL_PORT)" -N -B \
    "$(env_of "$work/first.json" CLOUDRON_MYSQL_DATABASE)" \
    -e 'CREATE TABLE notes (body text); INSERT INTO notes VALUES ("hello"); SELECT body FROM notes;') \
    || fail "mariadb as first-app"
[ "$got" = hello ] || fail "mariadb as first-app read back '$got'"
say "first-app: the mariadb client as the app works (its own database at $mysql_ip)"

# 5. Three postgresql replicas; installs while one of them is killed.
"${compose[@]}" up -d --scale postgresql=3 >"$work/scale.log" 2>&1 \
    || { cat "$work/scale.log" >&2; fail "up --scale postgresql=3"; }
wait_healthy 300 || fail "not healthy after --scale postgresql=3"
replicas=$(containers_of postgresql | wc -l)
[ "$replicas" = 3 ] || fail "$replicas postgresql replicas, wanted 3"
say "postgresql scaled to 3 replicas"

# Prometheus finds every replica by DNS and scrapes each (deploy/prometheus/prometheus.yml).
prometheus=http://127.0.0.1:$FLEET_PROMETHEUS_PORT
deadline=$((SECONDS + 120))
while :; do
    up=$(curl -fsS "$prometheus/api/v1/targets" 2>/dev/null \
        | jq '[.data.activeTargets[] | select(.labels.job == "postgresql" and .health == "up")] | length' \
        2>/dev/null || echo 0)
    [ "$up" = 3 ] && break
    [ $SECONDS -lt $deadline ] || fail "Prometheus scrapes $up postgresql replicas, wanted 3"
    sleep 2
done
jobs_up=$(curl -fsS "$prometheus/api/v1/targets" \
    | jq -r '[.data.activeTargets[] | select(.health == "up") | .labels.job] | unique | join(" ")')
say "Prometheus scrapes all 3 postgresql replicas; jobs with targets up: $jobs_up"


mkdir -p "$work/runs"
export -f call install
export coordinator work
seq 1 "$installs" | xargs -P "$parallel" -I{} bash -c \
    'if install "load-app-{}" >"$work/runs/{}.out" 2>&1; then touch "$work/runs/{}.ok"; else touch "$work/runs/{}.failed"; fi' &
load_pid=$!
victim=$(containers_of postgresql | head -1)
deadline=$((SECONDS + 300))
while [ "$(find "$work/runs" -name '*.ok' -o -name '*.failed' | wc -l)" -lt $((installs / 3)) ]; do
    [ $SECONDS -lt $deadline ] || fail "the first third of the installs did not finish in 300 s"
    sleep 0.2
done
docker kill "$victim" >/dev/null
say "killed postgresql replica $victim after $(find "$work/runs" -name '*.ok' -o -name '*.failed' | wc -l) installs"
wait "$load_pid" || true
ok=$(find "$work/runs" -name '*.ok' | wc -l)
failed=$(find "$work/runs" -name '*.failed' | wc -l)
say "installs while a replica died: $ok succeeded, $failed failed (of $installs)"
if [ "$failed" != 0 ]; then
    for f in "$work"/runs/*.failed; do
        echo "--- ${f##*/}: $(tr '\n' ' ' <"${f%.failed}.out" | cut -c1-300)" >&2
    done
fi

# The coordinator spread the load: every surviving replica served Provision calls (its own
# metrics, at its container address).
for c in $(containers_of postgresql); do
    served=$(curl -fsS "http://$(container_ip "$c"):9464/metrics" \
        | awk '/^fleet_grpc_calls_total/ && /Provision/ && /code="OK"/ { n += $NF } END { print n + 0 }')
    say "postgresql replica $c answered $served Provision calls OK"
    [ "$served" -gt 0 ] || fail "postgresql replica $c got no Provision call: the load was not spread"
done

# 6. No orphans: every List equals the coordinator's view.
apps_with() { # ADDON -> sorted app ids the coordinator holds with that addon
    local token= page
    : >"$work/apps.json"
    while :; do
        page=$(call "$coordinator" fleet.coordinator.v1.Coordinator/ListApps \
            "{\"page_size\":100,\"page_token\":\"$token\"}") || fail "ListApps"
        echo "$page" | jq -c '.apps[]?' >>"$work/apps.json"
        token=$(echo "$page" | jq -r '.nextPageToken // empty')
        [ -n "$token" ] || break
    done
    jq -r --arg a "$1" 'select((.provisionedAddons // []) | index($a)) | .appId' "$work/apps.json" | LC_ALL=C sort
}
orphans=0
for service in postgresql redis mysql; do
    port=$(case $service in mysql) echo 50051 ;; postgresql) echo 50052 ;; redis) echo 50054 ;; esac)
    apps_with "$service" >"$work/want-$service"
    for c in $(containers_of "$service"); do
        ip=$(container_ip "$c")
        call "$ip:$port" fleet.addon.v1.Addon/List '{}' | jq -r '.appIds[]?' | LC_ALL=C sort >"$work/got-$service" \
            || fail "List on $service replica $c"
        if ! diff -u "$work/want-$service" "$work/got-$service" >"$work/diff-$service"; then
            echo "--- $service replica $c (coordinator vs service):" >&2
            cat "$work/diff-$service" >&2
            orphans=$((orphans + 1))
        fi
    done
    say "$service: $(wc -l <"$work/want-$service") apps, List of every live replica equal to ListApps"
done
pg=$(containers_of postgres)
databases=$(docker exec -u postgres "$pg" psql -X -At -h /var/lib/fleet-postgres -d postgres \
    -c "SELECT count(*) FROM pg_database WHERE datname NOT IN ('postgres', 'template0', 'template1')")
want=$(wc -l <"$work/want-postgresql")
[ "$databases" = "$want" ] || { echo "PostgreSQL has $databases app databases, the coordinator $want apps with postgresql" >&2; orphans=$((orphans + 1)); }
say "PostgreSQL: $databases app databases for $want apps"

[ "$failed" = 0 ] || fail "$failed of $installs installs failed while a postgresql replica was killed"
[ "$orphans" = 0 ] || fail "orphans found (above)"
"${compose[@]}" down -v -t 10 >/dev/null 2>&1 || fail "docker-compose down -v"
[ -z "$(docker ps -aq)" ] || fail "containers left after down"
[ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$project")" ] || fail "volumes left after down -v"
say "down -v: no container, no volume left"

# 8. The same definitions as a swarm stack (deploy/stack.sh) on a single-node swarm in this
# engine: every service runs (but the privileged docker-engine and docker-proxy, which swarm
# cannot run), postgresql as 2 replicas found by DNS, and apps install through the coordinator.
docker swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init"
swarm=1
stack=${project}st
swarm_started=$SECONDS
STACK_COMPOSE_FILE=$work/compose/docker-compose.yml bash "$repo/deploy/stack.sh" \
    deploy "$stack" --replicas postgresql=2 >"$work/stack.log" 2>&1 \
    || { cat "$work/stack.log" >&2; fail "stack.sh deploy"; }
stack_containers() { docker ps -a --filter "label=com.docker.stack.namespace=$stack" "$@"; }
deadline=$((SECONDS + 600))
while :; do
    # Every service at its desired count of running tasks, and every running container healthy.
    pending=$(docker service ls --filter "label=com.docker.stack.namespace=$stack" \
        --format '{{.Name}} {{.Replicas}}' | awk '{ split($2, r, "/"); if (r[1] != r[2]) print }')
    unhealthy=$(stack_containers --filter status=running --format '{{.Names}} {{.Status}}' | grep -v '(healthy)' || true)
    [ -z "$pending$unhealthy" ] && break
    if [ $SECONDS -ge $deadline ]; then
        echo "$pending" >&2; echo "$unhealthy" >&2
        fail "the stack did not come up healthy in 600 s"
    fi
    sleep 2
done
say "swarm stack up and healthy: $(docker service ls -q --filter "label=com.docker.stack.namespace=$stack" | wc -l) services, $(stack_containers -q --filter status=running | wc -l) containers in $((SECONDS - swarm_started))s"
# The coordinator finds both replicas by their name (it resolves names again every 5 s, and
# swarm's DNS names a task once it runs).
deadline=$((SECONDS + 90))
while :; do
    detail=$(call "$coordinator" fleet.coordinator.v1.Coordinator/GetFleetStatus '{}' \
        | jq -r '.services[] | select(.service == "postgresql") | .detail' 2>/dev/null || true)
    [ "$detail" = "2 of 2 replicas serving" ] && break
    [ $SECONDS -lt $deadline ] || fail "the stack's coordinator says of postgresql: '$detail'"
    sleep 2
done
for i in 1 2 3 4 5 6; do
    install "swarm-app-$i" >"$work/swarm-$i.json" || fail "InstallApp swarm-app-$i on the stack"
done
# The first app's own credentials, from inside the postgres container (the overlay network is
# not reachable from the host).
pg=$(stack_containers -q --filter status=running --filter "label=com.docker.swarm.service.name=${stack}_postgres")
(umask 077; printf '*:*:*:%s:%s\n' "$(env_of "$work/swarm-1.json" CLOUDRON_POSTGRESQL_USERNAME)" \
    "$(env_of "$work/swarm-1.json" CLOUDRON_POSTGRESQL_PASSWORD)" >"$work/swarm.pgpass")
docker cp "$work/swarm.pgpass" "$pg:/tmp/app.pgpass" >/dev/null
got=$(docker exec -e PGPASSFILE=/tmp/app.pgpass "$pg" sh -c 'chmod 600 /tmp/app.pgpass && exec "$@"' sh \
    psql -X -q -At -v ON_ERROR_STOP=1 \
    "host=127.0.0.1 port=5432 user=$(env_of "$work/swarm-1.json" CLOUDRON_POSTGRESQL_USERNAME) dbname=$(env_of "$work/swarm-1.json" CLOUDRON_POSTGRESQL_DATABASE)" \
    -c 'CREATE TABLE notes (body text); INSERT INTO notes VALUES ($$hello$$); SELECT body FROM notes;') \
    || fail "psql as swarm-app-1"
[ "$got" = hello ] || fail "psql as swarm-app-1 read back '$got'"
say "swarm: 6 apps installed; psql as swarm-app-1 works; postgresql: $detail"
# Both replicas served installs, as the stack's Prometheus saw them (after its next scrape).
deadline=$((SECONDS + 90))
while :; do
    served=$(curl -fsS "$prometheus/api/v1/query" --data-urlencode \
        'query=fleet_grpc_calls_total{job="postgresql",method="/fleet.addon.v1.Addon/Provision",code="OK"} > 0' \
        | jq '.data.result | length' 2>/dev/null || echo 0)
    [ "$served" = 2 ] && break
    [ $SECONDS -lt $deadline ] || fail "Prometheus shows $served of 2 postgresql replicas serving installs"
    sleep 3
done
say "swarm: Prometheus shows both postgresql replicas serving installs"
bash "$repo/deploy/stack.sh" rm "$stack" >/dev/null || fail "stack.sh rm"
docker swarm leave --force >/dev/null || fail "docker swarm leave"
swarm=
say "swarm stack removed, swarm left"
say "PASSED in $((SECONDS - started_at))s"
