# Baton — see README.md. Every target is safe to run twice.
#   make up     run the whole stack locally (deploy/local/run.sh), print the URL
#   make down   stop it
#   make logs   follow its logs
#   make test   everything CI runs: lint, unit + integration, end-to-end, browser
#   make deploy-test  the container and Kubernetes paths, run for real (root, podman)
SHELL := /bin/bash
DATABASE_URL_FOR_TESTS ?= postgres://postgres@127.0.0.1:5432/postgres
BROWSER_DEPS := tests/browser/node_modules/.package-lock.json
# The database `make sqlx-prepare`/`sqlx-check` rebuild with every part's tables
# (migrations/compile-time-schema.sh) for sqlx's compile-time query checks.
SQLX_SCHEMA_URL ?= postgres://postgres@127.0.0.1:5432/baton_sqlx
SQLX_CLI_VERSION := 0.8.6

.PHONY: up down logs status test lint fmt sqlx-prepare sqlx-check e2e interop browser-deps bench fuzz deploy-test
up:
	@deploy/local/run.sh up

down:
	@deploy/local/run.sh down

logs:
	@deploy/local/run.sh logs

status:
	@deploy/local/run.sh status

# The end-to-end suite (crate baton-tests) starts the real binaries from
# target/debug, so they are built first; nextest then runs every crate's tests.
test: export DATABASE_URL ?= $(DATABASE_URL_FOR_TESTS)
test: lint sqlx-check $(BROWSER_DEPS)
	cargo build --workspace --bins
	cargo nextest run --workspace --no-fail-fast
	bash tests/interop/run.sh

# Certified relying-party libraries (openid-client, Authlib) against the real idp.
interop: export DATABASE_URL ?= $(DATABASE_URL_FOR_TESTS)
interop:
	bash tests/interop/run.sh

# Only the end-to-end and browser tests.
e2e: export DATABASE_URL ?= $(DATABASE_URL_FOR_TESTS)
e2e: $(BROWSER_DEPS)
	cargo build --workspace --bins
	cargo nextest run -p baton-tests --no-fail-fast

# deploy/compose.yaml and deploy/k8s run with podman from the binaries in
# target/debug (deploy/test/run.sh): images built, every part ready, the
# browser test through the containers, replicas, manifests validated. Root only.
deploy-test: $(BROWSER_DEPS)
	cargo build --bins -p idp -p gateway -p order -p payment -p inventory
	deploy/test/run.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# Every query is checked at compile time (sqlx::query!) against the committed
# .sqlx/ (SQLX_OFFLINE=true in .cargo/config.toml: no database needed to build).
# After changing a query or a migration, regenerate it and commit the result:
sqlx-prepare:
	@command -v cargo-sqlx >/dev/null || { echo "cargo-sqlx not found: cargo install sqlx-cli --version $(SQLX_CLI_VERSION) --locked --no-default-features --features postgres,rustls"; exit 1; }
	migrations/compile-time-schema.sh $(SQLX_SCHEMA_URL)
	SQLX_OFFLINE=false DATABASE_URL=$(SQLX_SCHEMA_URL) cargo sqlx prepare --workspace -- --all-targets

# Fails when .sqlx/ is stale: a query or a migration changed without `make sqlx-prepare`.
sqlx-check:
	@command -v cargo-sqlx >/dev/null || { echo "cargo-sqlx not found: cargo install sqlx-cli --version $(SQLX_CLI_VERSION) --locked --no-default-features --features postgres,rustls"; exit 1; }
	migrations/compile-time-schema.sh $(SQLX_SCHEMA_URL)
	SQLX_OFFLINE=false DATABASE_URL=$(SQLX_SCHEMA_URL) cargo sqlx prepare --workspace --check -- --all-targets

browser-deps: $(BROWSER_DEPS)
$(BROWSER_DEPS): tests/browser/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ (apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

# Throughput, latency and memory against in-run baselines (bench/README.md);
# writes bench/results.md. Release builds; the chain's auth-off baseline is a
# separate build with guard's bench-insecure-no-auth feature in its own target
# directory, so no normal binary ever has it.
bench: export DATABASE_URL ?= $(DATABASE_URL_FOR_TESTS)
bench:
	cargo build --release -p idp -p gateway -p order -p payment -p inventory -p baton-bench
	BATON_BENCH_INSECURE_NO_AUTH=1 cargo build --release --target-dir target/bench-insecure \
		-p gateway -p order -p payment -p inventory --features guard/bench-insecure-no-auth
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+ (apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix bench/peer --no-audit --no-fund --loglevel=error
	target/release/baton-bench --bin-dir target/release \
		--insecure-bin-dir target/bench-insecure/release --out bench/results.md

# The property tests of token and request parsing (idp's form, PKCE, redirect
# URI and Basic parsing; every validator of the real stack against generated
# claims and headers; proptest) with far more cases than `make test` runs. cargo-fuzz
# needs nightly and is not part of the toolchain here, so this is the long run.
# FUZZ_CASES=100000 make fuzz for longer still.
FUZZ_CASES ?= 20000
fuzz: export DATABASE_URL ?= $(DATABASE_URL_FOR_TESTS)
fuzz:
	cargo build --workspace --bins
	PROPTEST_CASES=$(FUZZ_CASES) cargo nextest run -p idp -p baton-tests \
		--no-fail-fast --no-capture -E 'test(properties)'
