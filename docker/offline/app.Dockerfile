# The app image from host-built binaries: nothing but the binaries and the shared libraries
# they link (copied from the host by scripts/images-offline, same Debian release as the base).
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin
USER 10001
