#!/usr/bin/env bash
# The fleet as a Docker swarm stack, rendered from the same deploy/docker-compose.yml that
# compose runs, for operators who outgrow one machine:
#   deploy/stack.sh render [--replicas SERVICE=N ...]         the stack file, on stdout
#   deploy/stack.sh deploy NAME [--replicas SERVICE=N ...]    render and `docker stack deploy`
#   deploy/stack.sh rm NAME                                   `docker stack rm`, then wait
# STACK_COMPOSE_FILE names another compose file (default: deploy/docker-compose.yml); its
# relative paths are taken from its own directory.
# The images must be on every node that runs them (deploy/images.sh there, or a registry of
# yours: retag addon-fleet/* and set the image names). Secrets are the same files under
# deploy/secrets/ (deploy/init-secrets.sh); swarm copies them into its own store.
#
# What the rendering changes, because swarm reads compose files differently:
#   - depends_on is dropped (swarm starts every service at once; the services start
#     NOT_SERVING and wait for their backends, and swarm restarts what exits);
#   - restart becomes deploy.restart_policy (condition any);
#   - every service gets endpoint_mode dnsrr: its name resolves to every replica's address
#     (as under compose), which the coordinator spreads its calls over; swarm's virtual IPs
#     need iptables, which these engines run without;
#   - published ports use host mode (the port on the node that runs the task: one replica per
#     node for a service with published ports); ingress mode needs iptables too. Swarm cannot
#     bind a published port to one address: the compose file's 127.0.0.1 becomes every
#     interface of the node, so firewall the coordinator's port (50050) there;
#   - privileged services cannot run in swarm: docker-engine, and docker-proxy which needs it,
#     get 0 replicas (the docker addon needs compose, or an engine you run beside the stack);
#   - secrets are mounted 0400 and owned by uid 10001, as deploy/init-secrets.sh makes them
#     for compose (swarm's default is 0444);
#   - relative paths (secrets' files, bind mounts) become absolute, relative to deploy/.
# Environment: the same ${VARIABLE:-default} settings as compose: the published ports' are read
# here (each port becomes an entry of its own), the rest by `docker stack deploy` itself.
set -euo pipefail
compose_file=${STACK_COMPOSE_FILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/docker-compose.yml}
[ -f "$compose_file" ] || { echo "stack.sh: no compose file $compose_file" >&2; exit 1; }
base_dir=$(cd "$(dirname "$compose_file")" && pwd)
die() { echo "stack.sh: $*" >&2; exit 1; }

# Debian's python3-yaml (a dependency of docker-compose): the system Python has it.
python=/usr/bin/python3
[ -x "$python" ] || python=python3

render() { # [--replicas SERVICE=N ...]
    "$python" - "$compose_file" "$base_dir" "$@" <<'PY'
import os, re, sys
import yaml

compose_file, base, *args = sys.argv[1:]
replicas = {}
while args:
    flag = args.pop(0)
    if flag != "--replicas" or not args:
        sys.exit("stack.sh: usage: render [--replicas SERVICE=N ...]")
    name, _, count = args.pop(0).partition("=")
    if not count.isdigit():
        sys.exit(f"stack.sh: --replicas {name}={count}: N must be a number")
    replicas[name] = int(count)

with open(compose_file) as f:
    compose = yaml.safe_load(f)
services = compose["services"]
unknown = set(replicas) - set(services)
if unknown:
    sys.exit(f"stack.sh: --replicas names no service of the compose file: {', '.join(sorted(unknown))}")

def absolute(path):
    # Compose variables (${X:-./dir}) stay for `docker stack deploy` to expand; a relative
    # default inside one is made absolute too.
    def fix(p):
        return p if p.startswith("/") or p.startswith("$") else os.path.normpath(os.path.join(base, p))
    return re.sub(r"(\$\{[A-Z0-9_]+:-)(\.[^}]*)(\})", lambda m: m[1] + fix(m[2]) + m[3], fix(path))

def interpolate(text):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default}, from this environment."""
    def value(m):
        name, op, default = m[1], m[2], m[3]
        got = os.environ.get(name)
        if op == ":-" and not got:
            return default
        if op == "-" and got is None:
            return default
        return got or ""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", value, text)

def host_ports(spec):
    """Compose's short port syntax as swarm host-mode entries (ranges expanded)."""
    if isinstance(spec, dict):
        return [dict(spec, mode="host")]
    spec, _, protocol = interpolate(str(spec)).partition("/")
    parts = spec.split(":")
    published, target = parts[-2], parts[-1]  # an address before them is dropped (see above)
    def span(text):
        first, _, last = text.partition("-")
        return range(int(first), int(last or first) + 1)
    out = []
    for p, t in zip(span(published), span(target)):
        out.append({"target": t, "published": p, "protocol": protocol or "tcp", "mode": "host"})
    return out

privileged = {name for name, s in services.items() if s.get("privileged")}
# A service that needs a privileged one (through depends_on) cannot work without it either.
needs_privileged = {
    name for name, s in services.items()
    if set(s.get("depends_on") or []) & privileged
}
for name, service in services.items():
    service.pop("depends_on", None)
    service.pop("build", None)
    restart = service.pop("restart", None)
    deploy = service.setdefault("deploy", {})
    deploy["endpoint_mode"] = "dnsrr"
    if restart and restart != "no":
        deploy.setdefault("restart_policy", {"condition": "on-failure" if restart == "on-failure" else "any"})
    if name in privileged or name in needs_privileged:
        service.pop("privileged", None)
        deploy["replicas"] = 0
    elif name in replicas:
        deploy["replicas"] = replicas[name]
    # As under compose (deploy/init-secrets.sh): each secret 0400 and owned by uid 10001, the
    # services' user (the backends read theirs as root). Swarm's default is 0444.
    if "secrets" in service:
        service["secrets"] = [
            secret if isinstance(secret, dict)
            else {"source": secret, "target": secret, "uid": "10001", "gid": "10001", "mode": 0o400}
            for secret in service["secrets"]
        ]
    if "ports" in service:
        service["ports"] = [entry for spec in service["ports"] for entry in host_ports(spec)]
    volumes = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, sep, rest = volume.partition(":")
            if source.startswith(".") or source.startswith("${"):
                volume = absolute(source) + sep + rest
        volumes.append(volume)
    if volumes:
        service["volumes"] = volumes
for secret in (compose.get("secrets") or {}).values():
    if "file" in secret:
        secret["file"] = absolute(secret["file"])
# Extension fields (x-*) were only anchors for the services above; write plain values, no
# anchors or aliases.
for key in [k for k in compose if k.startswith("x-")]:
    del compose[key]
class Plain(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True
yaml.dump(compose, sys.stdout, Dumper=Plain, sort_keys=False, default_flow_style=False)
PY
}

case "${1:-}" in
render)
    shift
    render "$@"
    ;;
deploy)
    [ $# -ge 2 ] || die "usage: deploy NAME [--replicas SERVICE=N ...]"
    name=$2
    shift 2
    stack=$(mktemp)
    trap 'rm -f "$stack"' EXIT
    render "$@" >"$stack"
    docker stack deploy --prune -c "$stack" "$name"
    ;;
rm)
    [ $# -eq 2 ] || die "usage: rm NAME"
    docker stack rm "$2"
    # `stack rm` returns before the tasks and the network are gone.
    for _ in $(seq 1 120); do
        [ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$2")" ] \
            && ! docker network inspect "$2_default" >/dev/null 2>&1 && exit 0
        sleep 1
    done
    die "the stack $2 was not gone after 120 s"
    ;;
*)
    die "usage: stack.sh render|deploy|rm (see the header of $0)"
    ;;
esac
