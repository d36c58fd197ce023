# scalelab: `make` (or `make help`) lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help build release test lint fmt deps-up deps-down deps-status bench-login bench-lb benchmark-all clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Debug build of the whole workspace
	$(CARGO) build --workspace

release: ## Release build of the whole workspace (what benchmarks run)
	$(CARGO) build --workspace --release

test: deps-up ## Run every test against real Postgres and Redis (started on loopback if not running)
	$(CARGO) test --workspace --all-features

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-features --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

deps-up: ## Start Postgres and Redis on loopback if they are not running (data in .scalelab/)
	@scripts/deps up

deps-down: ## Stop the Postgres and Redis that deps-up started (nothing else)
	@scripts/deps down

deps-status: ## Say whether Postgres and Redis answer
	@scripts/deps status

bench-login: ## Measure what one login costs with the argon2id settings
	$(CARGO) bench -p gateway --bench login_cost

bench-lb: ## Load balancer vs nginx vs HAProxy on the same upstreams (installs them if missing)
	bench/lb-compare

benchmark-all: ## The full lab protocol (needs the load balancer, load tests and compose stack: not built yet)
	@echo "benchmark-all: not available yet: it needs the load balancer, the Goose load tests and the stack (issues 3, 4, 5)." >&2
	@exit 1

clean: ## Remove build output and local service data (stops local Postgres/Redis first)
	-@scripts/deps down
	$(CARGO) clean
	rm -rf .scalelab
