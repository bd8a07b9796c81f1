#!/usr/bin/env bash
# A backend container's first start, once (deploy/<backend>/container-start.sh):
#   first-start.sh DIR SECRET_FILE WHAT INIT_COMMAND [ARG...]
# Unless DIR/.initialised marks a completed one: empties DIR (what a start that did not complete
# left), runs INIT_COMMAND ARG... COPY, where COPY is a private copy of SECRET_FILE (WHAT names
# the secret in the message when it is missing; init scripts may hand their password file to
# the server's user, and the secret is a file of the host), then marks DIR initialised.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 DIR SECRET_FILE WHAT INIT_COMMAND [ARG...]" >&2; exit 2; }
dir=$1 secret_file=$2 what=$3
shift 3

[ -e "$dir/.initialised" ] && exit 0
[ -r "$secret_file" ] || { echo "first-start.sh: no $what in $secret_file (a secret)" >&2; exit 1; }
mkdir -p "$dir"
find "$dir" -mindepth 1 -delete
copy=$(umask 077 && mktemp)
trap 'rm -f "$copy"' EXIT
cat "$secret_file" >"$copy"
"$@" "$copy"
touch "$dir/.initialised"
