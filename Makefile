# The two commands a newcomer needs (README): `make up` and `make test`.
.PHONY: up test lint unit bench deps

# Brings the whole fleet up on this machine with its backends (foreground; Ctrl-C stops it).
up:
	deploy/fleet-up.sh

# Every test: installs what is missing, checks format and lints, then runs all tests against
# real backends the tests start themselves.
test: deps lint
	cargo test --workspace --all-features

deps:
	deploy/install-deps.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings
	cd proto && buf lint

# Provision through each service vs the same SQL issued directly.
bench: deps
	cargo bench -p fleet-postgresql --bench provision
	cargo bench -p fleet-mysql --bench provision
	cargo bench -p fleet-coordinator --bench fan_out
	cargo bench -p fleet-redis --bench instances
	cargo bench -p fleet-ldap --bench directory
	cargo bench -p fleet-oidc --bench tokens
	cargo bench -p fleet-mail --bench mail
	cargo bench -p fleet-turn --bench turn
	cargo bench -p fleet-docker-proxy --bench proxy
