# One image for every scalelab binary (gateway, microservice, worker, load_balancer, loadtest,
# and the healthcheck the compose file runs);
# each compose service picks its binary with `command:`.
#
# Dependencies are compiled in their own layer from the manifests alone, so a change to the
# code rebuilds only the workspace's crates.

FROM rust:1.95.0-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ make pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY common/Cargo.toml common/
COPY gateway/Cargo.toml gateway/
COPY load_balancer/Cargo.toml load_balancer/
COPY microservice/Cargo.toml microservice/
COPY worker/Cargo.toml worker/
COPY loadtest/Cargo.toml loadtest/
COPY report/Cargo.toml report/
COPY lab/Cargo.toml lab/
# Placeholder sources with the same targets, to build and cache the dependencies only.
RUN for crate in common gateway load_balancer microservice worker loadtest report lab; do \
      mkdir -p "$crate/src" && touch "$crate/src/lib.rs" \
      && echo 'fn main() {}' >"$crate/src/main.rs"; \
    done \
    && mkdir -p gateway/benches common/tests \
    && echo 'fn main() {}' >gateway/benches/login_cost.rs && touch common/tests/redis.rs \
    && cargo build --release --workspace --locked \
    && rm -rf common gateway load_balancer microservice worker loadtest report lab
COPY . .
# Newer mtimes than the placeholders: cargo rebuilds the workspace's crates, not the rest.
RUN find common gateway load_balancer microservice worker loadtest report lab -name '*.rs' -exec touch {} + \
    && cargo build --release --workspace --locked \
    && mkdir /out \
    && cp target/release/gateway target/release/microservice target/release/worker target/release/healthcheck \
          target/release/load_balancer target/release/loadtest target/release/relay /out/

FROM debian:bookworm-20250520-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home scalelab
COPY --from=build /out/ /usr/local/bin/
USER scalelab
