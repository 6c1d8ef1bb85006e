# electd developer entry points. The README's two commands are `make dev` and `make test`.
.PHONY: bootstrap dev dev-secure test check unit gen clients soak bench clean

PYTEST := .venv/bin/pytest

bootstrap:
	@scripts/bootstrap.sh

## Start a local cluster: a real ZooKeeper and 3 nodes on ports 7001-7003 (Ctrl-C stops it).
dev: bootstrap
	.venv/bin/electd dev --nodes 3

## The same, secured: a throwaway CA, ZooKeeper 3.9.5 over TLS with digest auth and locked-down
## znodes, nodes with mutual TLS; prints the electd and grpcurl commands that work against it.
dev-secure: bootstrap
	.venv/bin/electd dev --nodes 3 --secure

## Everything CI runs: static checks, client builds, then the whole test suite against real
## processes (ZooKeeper, electd nodes, every client).
test: bootstrap clients
	scripts/install-ops-tools.sh
	scripts/check.sh
	scripts/test-clients.sh
	$(PYTEST) tests

check: bootstrap
	scripts/check.sh

## Build every client example and the Go tools (grpcurl, grpc-health-probe).
clients: bootstrap
	scripts/build-clients.sh

unit: bootstrap
	$(PYTEST) tests/unit

## Regenerate server/electd/v1 from proto/ (the one command; CI checks it is in sync).
gen: bootstrap
	scripts/gen-proto.sh

clean:
	rm -rf .venv tools/node_modules .pytest_cache .mypy_cache .ruff_cache

## Long randomized fault soak: MINUTES=10 (default), SEED=<n> to replay, CANDIDATES=2 (default)
## candidate processes of a named election under the same faults; output in .tmp/soak.
soak: bootstrap
	.venv/bin/python -m tests.faults.soak --minutes $(or $(MINUTES),10) $(if $(SEED),--seed $(SEED)) --candidates $(or $(CANDIDATES),2) --out .tmp/soak

## Benchmarks (BENCHMARKS.md): install etcd, ghz, the stream client and matplotlib, then run the
## full suite (about 15 minutes on 2 cores). Smoke-sized: .venv/bin/python -m bench --quick
bench: bootstrap
	bench/install.sh
	.venv/bin/python -m bench
