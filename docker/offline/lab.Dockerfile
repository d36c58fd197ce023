# The lab image from Debian's packages: the host-built lab, loadtest and report binaries, the
# host's Docker CLI (static) and Debian's docker-compose (v1), on the offline base.
ARG BASE
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends docker-compose \
    && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
COPY bin/ /usr/local/bin/
ENV LAB_CONTAINER=1
WORKDIR /scalelab
ENTRYPOINT ["lab"]
CMD ["--help"]
