# The app image from host-built binaries (same Debian release as the host, so the same glibc).
ARG BASE
FROM ${BASE}
RUN useradd --system --uid 10001 --no-create-home scalelab
COPY bin/ /usr/local/bin/
COPY healthcheck /usr/local/bin/healthcheck
USER scalelab
