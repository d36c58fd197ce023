# The images of scalelab, from one build stage (nothing here is specific to amd64 or arm64:
# the same file builds on an Intel PC and an Apple Silicon Mac):
#   app  every binary of the stack (gateway, microservice, worker, load_balancer, loadtest,
#        healthcheck, relay); each compose service picks its binary with `command:`;
#   lab  the lab itself (lab, loadtest, report) with a Docker CLI and Compose, so that
#        `docker compose run --rm lab <command>` needs nothing on the host but Docker.
#
# A class never builds this: it pulls the released images (README, "Before class"). The
# release workflow (.github/workflows/release.yml) and developers (`make images`) build it
# with BuildKit, passing VERSION (the workspace's, checked below) and REVISION (the commit).
# Base images by exact tag; the release workflow records the digests they resolved to.

FROM rust:1.95.0-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake g++ make pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads: the manifests, each crate's sources, benches and tests (cargo
# checks that the targets its manifests name exist), the migrations the binaries embed.
COPY Cargo.toml Cargo.lock ./
COPY records/ records/
COPY catalogue/ catalogue/
COPY probe/ probe/
COPY common/ common/
COPY gateway/ gateway/
COPY load_balancer/ load_balancer/
COPY microservice/ microservice/
COPY worker/ worker/
COPY loadtest/ loadtest/
COPY report/ report/
COPY stack/ stack/
COPY live/ live/
COPY lab/ lab/
# The label is the workspace's version or the build stops: an image never claims another.
ARG VERSION=unset
RUN found=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml) \
    && if [ "$VERSION" != "$found" ]; then \
         echo "VERSION=$VERSION but the workspace is $found: build with make images (it passes it)" >&2; exit 1; \
       fi
# Cargo's registry and target folder in BuildKit caches: a rebuild compiles only what changed.
# Binaries only: no tests, benches or examples.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --workspace --bins \
    && mkdir -p /out/app /out/lab \
    && cd target/release \
    && cp gateway microservice worker healthcheck load_balancer loadtest relay /out/app/ \
    && cp lab loadtest report /out/lab/

# The Docker CLI with its Compose and Buildx plugins (static binaries, one per architecture).
FROM docker:27.5.1-cli AS docker-cli

# What both images stand on: Debian, CA roots, and the version and commit they were built from.
FROM debian:12.14-slim AS runtime
ARG VERSION=unset
ARG REVISION=unknown
LABEL org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.licenses="MIT"
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM runtime AS lab
LABEL org.opencontainers.image.title="scalelab-lab" \
      org.opencontainers.image.description="The scalelab lab: orchestration, load generator, report, Docker CLI with Compose"
COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker
COPY --from=docker-cli /usr/local/libexec/docker/cli-plugins/ /usr/local/libexec/docker/cli-plugins/
COPY --from=build /out/lab/ /usr/local/bin/
# The lab knows it runs here: compose runtime, the stack reached on its own network.
ENV LAB_CONTAINER=1
WORKDIR /scalelab
ENTRYPOINT ["lab"]
CMD ["--help"]

# Last, so that a plain `docker build .` gives the app image.
FROM runtime AS app
LABEL org.opencontainers.image.title="scalelab-app" \
      org.opencontainers.image.description="Every scalelab service: gateway, microservice, worker, load balancer, load generator"
RUN useradd --system --uid 10001 --no-create-home scalelab
COPY --from=build /out/app/ /usr/local/bin/
USER scalelab
