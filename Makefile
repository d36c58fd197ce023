# scalelab: `make` (or `make help`) lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

GATEWAYS ?= 1
SCENARIO ?= hit
PROFILE ?= classic
export RUNTIME QUICK IMAGES

.PHONY: help build release test lint fmt deps-up deps-down deps-status bench-login bench-lb bench-lb-instructions \
	up up1 up3 down ps logs load test1-hit test1-miss test3-hit test3-miss benchmark-all report \
	images-offline clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

bench-lb-instructions: ## Instructions per request of the load balancer and nginx (callgrind; repeatable)
	bench/lb-instructions

up: ## Start the stack with GATEWAYS=N gateways (RUNTIME=compose|native), or rescale it
	@scripts/lab up $(GATEWAYS)

up1: ## Start the stack with 1 gateway
	@scripts/lab up 1

up3: ## Start the stack with 3 gateways
	@scripts/lab up 3

down: ## Stop the stack (whichever runtime runs it)
	@scripts/lab down

ps: ## What runs, and its health
	@scripts/lab ps

logs: ## Last log lines of every service (SERVICE=name for one)
	@scripts/lab logs $(SERVICE)

load: ## One recorded run: GATEWAYS=N SCENARIO=hit|miss|mixed|login|longtask PROFILE=classic|warmup|burst|ramp|stages|breakpoint
	@scripts/lab load $(GATEWAYS) $(SCENARIO) $(PROFILE)

test1-hit: ## 1 gateway, cache-hit load test (QUICK=1 for a short run)
	@scripts/lab load 1 hit

test1-miss: ## 1 gateway, cache-miss load test
	@scripts/lab load 1 miss

test3-hit: ## 3 gateways, cache-hit load test
	@scripts/lab load 3 hit

test3-miss: ## 3 gateways, cache-miss load test
	@scripts/lab load 3 miss

benchmark-all: ## The lab: 1 then 3 gateways, miss and hit runs, report (QUICK=1 smoke, RUNTIME=native)
	@scripts/benchmark-all

report: ## tests/reports/summary.md and charts from tests/results/*
	$(CARGO) build --workspace --release --quiet
	target/release/report

images-offline: ## Build the stack's images from Debian packages (no registry needed)
	@scripts/images-offline

clean: ## Stop everything, remove build output, local service data and the stack's volumes
	-@scripts/lab down -v
	-@scripts/deps down
	$(CARGO) clean
	rm -rf .scalelab
