# toegw appliance image. Build:   podman build -t toegw .   (or docker build)
# Run (the TOE behind its private TAP, NAT'd through the container's network; docs/operations.md):
#   docker run --cap-add NET_ADMIN --device /dev/net/tun --sysctl net.ipv4.ip_forward=1 \
#       -p 8080:8080 -p 10809:10809 -v toegw:/var/lib/toegw toegw
#
# Two stages: the build stage has the compiler and the libraries' headers only (no test
# tools); the runtime stage is debian:bookworm-slim with the shared libraries toegw links,
# nft (the TOE's NAT rule) and curl (the health check), and runs as the user toegw, which
# needs CAP_NET_ADMIN alone (--cap-add NET_ADMIN) for the TOE's link.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
WORKDIR /src
COPY scripts/install-deps scripts/fetch-lwip scripts/
RUN bash scripts/install-deps --build
COPY . .
RUN make -j"$(nproc)" toegw client && strip --strip-unneeded toegw \
    build/libtoegw.so build/toegw-preload.so

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="toegw" \
      org.opencontainers.image.description="iSCSI storage gateway with an emulated TCP offload engine: SAN LUNs exported over NBD and a REST API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.documentation="docs/operations.md"
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libssl3 libgnutls30 libisal2 libjansson4 libmicrohttpd12 libpcap0.8 nftables curl \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
        /var/log/apt /var/log/dpkg.log /usr/share/doc/* /usr/share/man/* /usr/share/info/* \
    && useradd --system --no-create-home --home-dir /var/lib/toegw \
        --shell /usr/sbin/nologin toegw \
    && install -d -m 0700 -o toegw -g toegw /var/lib/toegw
COPY --from=build /src/toegw /usr/local/bin/toegw
# libtoegw and the preload shim, for programs in this image or a volume's consumers
# (docs/broker.md: the broker socket is STATE_DIR/broker.sock)
COPY --from=build /src/build/toegw-preload.so /src/build/libtoegw.so /src/build/libtoegw.a \
     /usr/local/lib/
COPY --from=build /src/client/toegw.h /usr/local/include/toegw.h
COPY scripts/healthcheck /usr/local/lib/toegw/healthcheck
COPY docs/toegw.8 /usr/local/share/man/man8/toegw.8
COPY scripts/toegw-completion.bash /usr/share/bash-completion/completions/toegw
USER toegw
VOLUME /var/lib/toegw
EXPOSE 8080 10809
# beyond loopback, so TLS on both (a self-signed certificate is made in /var/lib/toegw/tls/
# at the first start unless TOEGW_TLS_CERTIFICATES names a directory)
ENV TOEGW_API=0.0.0.0:8080 TOEGW_NBD=0.0.0.0:10809 TOEGW_TOE_NAT=1 \
    TOEGW_API_TLS=on TOEGW_NBD_TLS=require TOEGW_STATE_DIR=/var/lib/toegw
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/lib/toegw/healthcheck"]
ENTRYPOINT ["/usr/local/bin/toegw"]
CMD ["serve"]
