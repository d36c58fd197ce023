# The images of scalelab, from one build stage (nothing here is specific to amd64 or arm64:
# the same file builds on an Intel PC and an Apple Silicon Mac):
#   app  every binary of the stack (gateway, microservice, worker, load_balancer, loadtest,
#        healthcheck, relay); each compose service picks its binary with `command:`;
#   lab  the lab itself (lab, loadtest, report) with a Docker CLI and Compose, so that
#        `docker compose run --rm lab <command>` needs nothing on the host but Docker.
#
# Dependencies are compiled in their own layer from the manifests alone, so a change to the
# code rebuilds only the workspace's crates.

FROM rust:1.95.0-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ make pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY records/Cargo.toml records/
COPY catalogue/Cargo.toml catalogue/
COPY probe/Cargo.toml probe/
COPY common/Cargo.toml common/
COPY gateway/Cargo.toml gateway/
COPY load_balancer/Cargo.toml load_balancer/
COPY microservice/Cargo.toml microservice/
COPY worker/Cargo.toml worker/
COPY loadtest/Cargo.toml loadtest/
COPY report/Cargo.toml report/
COPY lab/Cargo.toml lab/
# Placeholder sources with the same targets, to build and cache the dependencies only.
RUN for crate in records catalogue probe common gateway load_balancer microservice worker loadtest report lab; do \
      mkdir -p "$crate/src" && touch "$crate/src/lib.rs" \
      && echo 'fn main() {}' >"$crate/src/main.rs"; \
    done \
    && mkdir -p gateway/benches common/tests \
    && echo 'fn main() {}' >gateway/benches/login_cost.rs && touch common/tests/redis.rs \
    && cargo build --release --workspace --bins --locked \
    && rm -rf records catalogue probe common gateway load_balancer microservice worker loadtest report lab
COPY . .
# Newer mtimes than the placeholders: cargo rebuilds the workspace's crates, not the rest.
# Binaries only: no tests, benches or examples.
RUN find records catalogue probe common gateway load_balancer microservice worker loadtest report lab -name '*.rs' -exec touch {} + \
    && cargo build --release --workspace --bins --locked \
    && mkdir -p /out/app /out/lab \
    && cd target/release \
    && cp gateway microservice worker healthcheck load_balancer loadtest relay /out/app/ \
    && cp lab loadtest report /out/lab/

# The Docker CLI with its Compose and Buildx plugins (static binaries, one per architecture).
FROM docker:27.5.1-cli AS docker-cli

FROM debian:bookworm-20250520-slim AS lab
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker
COPY --from=docker-cli /usr/local/libexec/docker/cli-plugins/ /usr/local/libexec/docker/cli-plugins/
COPY --from=build /out/lab/ /usr/local/bin/
# The lab knows it runs here: compose runtime, the stack reached on its own network.
ENV LAB_CONTAINER=1
WORKDIR /scalelab
ENTRYPOINT ["lab"]
CMD ["--help"]

# Last, so that a plain `docker build .` gives the app image as before.
FROM debian:bookworm-20250520-slim AS app
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home scalelab
COPY --from=build /out/app/ /usr/local/bin/
USER scalelab
