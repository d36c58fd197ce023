# scalelab: `make` (or `make help`) lists every target. The lab's targets call the `lab`
# binary (lab/), built on first use into target/lab/ so that it never re-resolves the
# workspace's features; settings come from .env (`make settings` shows them).
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
LAB := target/lab/debug/lab
REPORT := target/report/release/report

# The workspace's version: the images' tag and label.
VERSION := $(shell sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

REPEATS ?= 1
export RUNTIME QUICK REPEATS IMAGES BUILD SKIP_BUILD
# What a target takes (NAME=, N=, GATEWAYS=, SCENARIO=, FILE=, ...) reaches the lab as its
# environment (make exports what the command line and the environment set), never pasted
# into a shell command: a value from the environment, or a run folder's name, is data
# whatever it holds (one typed as make's own argument is make syntax first: `$(...)` in it
# is make's). Unset, the lab's defaults apply (1 gateway, hit, classic).
# lab/tests/make_injection.rs checks it.

.PHONY: help build release test lint fmt deps-up deps-down deps-status bench-login bench-lb bench-lb-instructions bench-generator differential \
	lab-bin report-bin settings env-example up up1 up3 scale down ps logs watch act load test1-hit test1-miss test3-hit test3-miss \
	benchmark-all autoscale experiment experiments fault faults lab answers handin report check-bounds images images-list images-pull images-save images-load images-offline \
	smoke-compose smoke-replicas smoke-classmate smoke-registry smoke-swarm smoke-observability lint-workflows deny clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Debug build of the whole workspace
	$(CARGO) build --workspace

release: ## Release build of the whole workspace (what benchmarks run)
	$(CARGO) build --workspace --release

test: ## Run every test against real Postgres and Redis (started on loopback if not running)
	$(CARGO) build --workspace --bins
	@$${CARGO_TARGET_DIR:-target}/debug/lab deps up
	$(CARGO) test --workspace --all-features

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-features --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

deps-up: lab-bin ## Start Postgres and Redis on loopback if they are not running (data in .scalelab/)
	@$(LAB) deps up

deps-down: lab-bin ## Stop the Postgres and Redis that deps-up started (nothing else)
	@$(LAB) deps down

deps-status: lab-bin ## Say whether Postgres and Redis answer
	@$(LAB) deps status

bench-login: ## Measure what one login costs with the argon2id settings
	$(CARGO) bench -p gateway --bench login_cost

bench-lb: ## Load balancer vs nginx vs HAProxy on the same upstreams (installs them if missing)
	bench/lb-compare

bench-lb-instructions: ## Instructions per request of the load balancer and nginx (callgrind; repeatable)
	bench/lb-instructions

bench-generator: ## CPU per request of our load generator vs a bare Goose test, bare clients (shared reqwest, a connection per user), Locust (PyPI) and wrk, with and without think time, side by side on the 3-gateway hit endpoint; then the open model at 2,000/s (rate kept, send lag, RSS; OPEN_ONLY=1 for it alone)
	bench/generator

# A smoke test of lab/tests/smoke/ (ignored by `make test`) on the debug binaries `make test`
# builds (a no-op when they are built).
smoke = $(CARGO) build --quiet --workspace --bins && \
	$(CARGO) test --quiet --workspace --all-features --test smoke -- --ignored --exact $(1) --nocapture

# Built on first use, unless given on the command line (LAB=… REPORT=…: the tests' binaries).
lab-bin:
	@$(if $(filter command line,$(origin LAB)),:,$(CARGO) build --quiet -p lab --target-dir target/lab)

report-bin:
	@$(if $(filter command line,$(origin REPORT)),:,$(CARGO) build --quiet --release -p report --target-dir target/report)

settings: lab-bin ## The lab settings in force (.env and environment), defaults and meanings
	@$(LAB) settings

env-example: lab-bin ## Regenerate .env.example from the settings table
	@$(LAB) env-example >.env.example

up: lab-bin ## Start the stack with GATEWAYS=N gateways (RUNTIME=compose|native|swarm), or rescale it in place
	@$(LAB) up

up1: lab-bin ## Start the stack with 1 gateway
	@$(LAB) up 1

up3: lab-bin ## Start the stack with 3 gateways
	@$(LAB) up 3

scale: lab-bin ## Scale a running stack's gateways to GATEWAYS=N (leaving ones drained first)
	@$(LAB) scale

# DATA, typed on make's command line only (an exported DATA is someone else's), becomes the
# lab's -v (make would read `make down -v` as its own --version).
down: lab-bin ## Stop the stack (whichever runtime runs it); DATA=delete also deletes its data (volumes, the lab's Redis keys)
	@$(LAB) down $(if $(filter command line,$(origin DATA)),$(if $(filter delete,$(DATA)),-v,$(if $(filter keep,$(DATA)),,$(error DATA takes delete or keep, not "$(DATA)"))))

ps: lab-bin ## What runs, and its state
	@$(LAB) ps

logs: lab-bin ## Last log lines of every instance (SERVICE=gateway: every gateway)
	@$(LAB) logs

watch: lab-bin ## The live page (http://127.0.0.1:8089/, LIVE_PORT) against the stack that runs, until Ctrl-C
	@$(LAB) watch

act: lab-bin ## Stop, kill, pause, resume or start one instance: INSTANCE=gateway-2 ACTION=kill
	@$(LAB) act

load: lab-bin ## One recorded run: GATEWAYS=N SCENARIO=hit|miss|mixed|login|longtask PROFILE=classic|warmup|burst|ramp|stages|breakpoint|wave|open (GENERATORS=K: K generators)
	@$(LAB) load

test1-hit: lab-bin ## 1 gateway, cache-hit load test (QUICK=1 for a short run)
	@$(LAB) load 1 hit

test1-miss: lab-bin ## 1 gateway, cache-miss load test
	@$(LAB) load 1 miss

test3-hit: lab-bin ## 3 gateways, cache-hit load test
	@$(LAB) load 3 hit

test3-miss: lab-bin ## 3 gateways, cache-miss load test
	@$(LAB) load 3 miss

benchmark-all: lab-bin ## The lab: 1 then 3 gateways, miss and hit runs, report (QUICK=1 smoke, RUNTIME=native, REPEATS=3 each run 3 times)
	@$(LAB) benchmark-all

autoscale: lab-bin ## Autoscaling lab: static 1, static 3, autoscaled under a rising and falling load; burst vs ramp autoscaled; report
	@$(LAB) autoscale

experiment: lab-bin ## One tactic A/B: NAME=<experiment> (without NAME: the list); report
	@$(LAB) experiment

experiments: lab-bin ## Every tactic A/B this runtime can run (QUICK=1: about 9 min natively), then the report
	@$(LAB) experiments

fault: lab-bin ## One fault under load: NAME=<fault> (without NAME: the list); report; fails on a broken promise
	@$(LAB) fault

faults: lab-bin ## Every fault (QUICK=1: about 3 min natively), then the report
	@$(LAB) faults

answers: lab-bin ## Lab N's answer sheet in answers/ (its predictions and questions, to fill in)
	@$(LAB) answers

handin: lab-bin ## Bundle lab N's filled answer sheet, its runs and the report: handin/lab<N>-<STUDENT>.tar.gz
	@$(LAB) handin

lab: lab-bin ## A classroom lab (labs/README.md): N=1 runs its experiment in QUICK form, then says where to read the answer
	@if [ -z "$$N" ]; then echo "make lab: set N (labs/README.md lists the labs)" >&2; exit 2; fi
	@$(LAB) lab

report: report-bin ## tests/reports/summary.md, summary.html, runs.csv and charts from tests/results/* (builds only the report)
	@$(REPORT)

check-bounds: report-bin ## Every run in tests/results (RESULTS_DIR): its ok req/s under its smallest hard bound, PASS or FAIL (exit 1 on a FAIL)
	@$(REPORT) --check-bounds

images: ## Developers: build the app and lab images from this checkout (BuildKit), under the release names
	SCALELAB_VERSION=$(VERSION) SCALELAB_REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1 \
	$(COMPOSE) -f docker-compose.yml -f docker-compose.build.yml --profile lab build microservice lab

images-list: lab-bin ## Each image a lab needs: here or missing, and its version
	@$(LAB) images list

images-pull: lab-bin ## Pull every image a lab needs (the same as: docker compose --profile lab pull)
	@$(LAB) images pull

images-save: lab-bin ## Write every image a lab needs to FILE (default scalelab-images-<version>.tar) and FILE.sha256
	@$(LAB) images save "$${FILE:-scalelab-images-$(VERSION).tar}"

images-load: lab-bin ## Check FILE against FILE.sha256, then load its images (no registry needed)
	@$(LAB) images load "$${FILE:-scalelab-images-$(VERSION).tar}"

images-offline: ## Build the stack's and the lab's images from Debian packages (no registry needed)
	@WITH_LAB=1 scripts/images-offline

smoke-compose: lab-bin ## CI's compose check: a volume made with another POSTGRES_PASSWORD (another checkout's), then offline images from debug binaries, 3 gateways, short run, even spread, down
	@export RUNTIME=compose IMAGES=$${IMAGES:-offline} BUILD=$${BUILD:-debug}; \
	  POSTGRES_PASSWORD=made-by-another-checkout $(LAB) up 1 && $(LAB) down && $(LAB) smoke

differential: ## CI's differential fuzz of request framing: the load balancer against nginx on seeded random requests (FUZZ_CASES, FUZZ_SEED; needs nginx)
	$(CARGO) test --workspace --all-features --test differential -- --ignored --nocapture

smoke-replicas: ## CI's check that labs 10 and 11 run on compose: 3 workers, 2 microservices by --scale, every run under its bounds, each replica busy
	@$(call smoke,replicas::labs_10_and_11_run_on_compose_with_every_replica_busy)

smoke-classmate: ## CI's check that a classmate on the network reaches nothing the lab started (root: a network namespace stands for their laptop)
	@$(call smoke,classmate::a_classmate_on_the_network_reaches_nothing_the_lab_started)

smoke-registry: ## CI's class path: the images pushed to a registry on loopback, then a fresh clone pulls them and runs QUICK benchmark-all with Rust off PATH; save/load with the registry stopped
	@$(call smoke,registry::a_class_pulls_the_images_and_runs_with_nothing_built)

deny: ## The dependency tree against deny.toml: bans, licenses, sources; advisories where the RustSec database can be fetched
	@scripts/deny

lint-workflows: ## Check .github/ (actionlint where it can be installed; the workflow schema and zizmor from PyPI)
	@scripts/lint-workflows

smoke-swarm: lab-bin ## CI's swarm check: the same on a single-node swarm (left as found), load from 2 generators
	@RUNTIME=swarm IMAGES=$${IMAGES:-offline} BUILD=$${BUILD:-debug} $(LAB) smoke

smoke-observability: ## CI's observability check: Prometheus (offline image) beside 3 gateways, every target up, the README's queries
	@$(call smoke,observability::prometheus_sees_every_service_and_runs_the_readmes_queries)

clean: lab-bin ## Stop everything, remove build output, local service data and the stack's volumes
	-@$(LAB) down -v
	-@$(LAB) deps down
	$(CARGO) clean
	rm -rf .scalelab
