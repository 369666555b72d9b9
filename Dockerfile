# toegw appliance image: one binary, run with
#   docker run --cap-add NET_ADMIN --device /dev/net/tun -p 8080:8080 -p 10809:10809 toegw
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN bash scripts/install-deps
COPY . .
RUN make clean && make -j"$(nproc)" toegw

FROM debian:12
RUN apt-get update && apt-get install -y --no-install-recommends \
        libssl3 libisal2 libjansson4 libmicrohttpd12 libpcap0.8 iproute2 nftables \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/toegw /usr/local/bin/toegw
VOLUME /var/lib/toegw
EXPOSE 8080 10809
# the TOE's private TAP reaches the SAN through the container's network (docs/serve.md)
ENV TOEGW_API=0.0.0.0:8080 TOEGW_NBD=0.0.0.0:10809 TOEGW_TOE_NAT=1
ENTRYPOINT ["/usr/local/bin/toegw"]
CMD ["serve"]
