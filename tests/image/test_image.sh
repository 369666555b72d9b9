#!/usr/bin/env bash
# The appliance image, built and run for real. Outside any namespace (it fetches Debian's
# packages): a debian:bookworm-slim base imported from `debootstrap --variant=minbase
# bookworm` (kept in $IMAGE_CACHE and reused), then `podman --runtime runc build
# --pull=never --format docker` of the Dockerfile. Then, in a private network namespace
# with a SAN host joined by a veth pair (198.51.100.0/24), a tgtd target on the SAN host and
# the image running in the namespace with --cap-add NET_ADMIN and a TUN device: the
# health check passes, `podman inspect` shows the health check and the user toegw, the
# running process has uid != 0 and CAP_NET_ADMIN alone, a session over the TOE (its private
# TAP, NAT'd through the namespace) reaches the target, the API speaks HTTPS and the export
# requires TLS (the image's defaults), a read of its volume over nbds:// is byte-exact, the runtime image is under 150 MB, and `podman stop` ends it cleanly with its
# NAT rule gone. Then the uplink mode as the README runs it: a macvtap on the SAN segment,
# the target sees the TOE's own address, the process runs as the user toegw.
#
# Environment: IMAGE_CACHE (default /var/tmp/toegw-image: the debootstrap tree),
# IMAGE_TAG (default localhost/toegw:test).
# shellcheck source=../integration/lib/harness.sh
. "$(dirname "$0")/../integration/lib/harness.sh"
H_TEST=image
IMAGE_CACHE=${IMAGE_CACHE:-/var/tmp/toegw-image}
IMAGE_TAG=${IMAGE_TAG:-localhost/toegw:test}
NAME=toegw-image-test-$$
PODMAN=(podman --runtime runc)
# this sandbox's default limits are above what runc may set: give the container its own
ULIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=4096:4096)

# --- outside the namespace: the base and the image ------------------------------------------

# base_import - debian:bookworm-slim from a minbase debootstrap, slimmed as Debian's slim
# images are (no apt lists, docs, man pages or locales), unless podman has it already.
base_import() {
    "${PODMAN[@]}" image exists debian:bookworm-slim && return 0
    local root=$IMAGE_CACHE/rootfs
    if [ ! -x "$root/bin/sh" ]; then
        rm -rf "$root" && mkdir -p "$IMAGE_CACHE"
        echo "# debootstrap --variant=minbase bookworm $root" >&2
        debootstrap --variant=minbase bookworm "$root" >"$IMAGE_CACHE/debootstrap.log" 2>&1 ||
            { tail -5 "$IMAGE_CACHE/debootstrap.log" >&2; return 1; }
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
            "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
            "$root"/usr/share/info/* "$root"/usr/share/locale/*
    fi
    tar -C "$root" -c . | "${PODMAN[@]}" import - debian:bookworm-slim >/dev/null
}

if [ "${H_NETNS_CHILD:-}" != 1 ]; then
    for t in podman runc debootstrap; do
        command -v "$t" >/dev/null ||
            { echo "SKIP image: $t not found (bash scripts/install-deps installs it)"; exit 77; }
    done
    [ "$(id -u)" -eq 0 ] || { echo "SKIP image: needs root (podman, network namespaces)"; exit 77; }
    if ! base_import; then
        echo "FAIL image.base: cannot import debian:bookworm-slim from debootstrap"
        exit 1
    fi
    echo "# podman build -t $IMAGE_TAG $REPO" >&2
    t0=$(date +%s)
    if ! (cd "$REPO" && "${PODMAN[@]}" build --pull=never --format docker "${ULIMITS[@]}" \
            -t "$IMAGE_TAG" . >"/tmp/toegw-image-build.$$.log" 2>&1); then
        echo "FAIL image.build: $(tail -c 400 "/tmp/toegw-image-build.$$.log" | tr '\n' ' ')"
        exit 1
    fi
    rm -f "/tmp/toegw-image-build.$$.log"
    echo "PASS image.build"
    echo "# image built in $(($(date +%s) - t0)) s" >&2
fi

# --- inside a private namespace: run it -----------------------------------------------------

h_begin "$@"
h_need curl jq tgtd tgtadm nft nbdcopy nbdinfo cmp
# the container goes with the test, whatever ends it
image_cleanup() {
    local rc=$?
    "${PODMAN[@]}" rm -f -t 3 "$NAME" >/dev/null 2>&1
    (exit "$rc")
    h__cleanup
}
trap image_cleanup EXIT

size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE_TAG")
h_log "runtime image $IMAGE_TAG: $((size / 1000000)) MB"
h_check image.runtime_under_150mb "$((size / 1000000)) MB" test "$size" -lt 150000000
hc=$("${PODMAN[@]}" image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE_TAG")
h_check image.healthcheck_declared "$hc" sh -c "echo '$hc' | grep -q toegw/healthcheck"
user=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE_TAG")
h_check image.non_root_user "user '$user'" test "$user" = toegw
tools=$("${PODMAN[@]}" run --rm --network none "${ULIMITS[@]}" --health-interval disable \
    --entrypoint sh "$IMAGE_TAG" \
    -c 'ls /usr/bin/chromium /usr/bin/qemu-img /usr/bin/tshark /usr/bin/cc /usr/bin/tgtd 2>/dev/null' 2>/dev/null |
    tr '\n' ' ')
h_check image.no_build_or_test_tools "found: $tools" test -z "$tools"
shipped=$("${PODMAN[@]}" run --rm --network none "${ULIMITS[@]}" --health-interval disable \
    --entrypoint sh "$IMAGE_TAG" -c 'ls /usr/local/share/man/man8/toegw.8 \
    /usr/share/bash-completion/completions/toegw /usr/local/lib/toegw-preload.so' 2>/dev/null |
    wc -l)
h_check image.ships_man_completion_shim "$shipped of 3 files" test "$shipped" = 3

# the SAN: a second host, a target on it
h_san_host 198.51.100.2/24 198.51.100.1/24
H_TGTD_ON_SAN=1 H_TGTD_PORTAL=198.51.100.1:3260 h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:image1
LUN=$(h_lun_path 1 1)
h_random "$LUN" $((32 * 1024 * 1024))
h_lun_file 1 1 32M 512

# a TUN device node as a standard host has it (0666; the container's user is not root)
mknod "$H_TMP/tun" c 10 200 && chmod 0666 "$H_TMP/tun"
# podman's default sysctl (ping_group_range) cannot be set in a namespace it did not make
printf '[containers]\ndefault_sysctls = []\n' >"$H_TMP/containers.conf"
export CONTAINERS_CONF=$H_TMP/containers.conf
# the container cannot write /proc/sys: forwarding is the host's to give (docker run --sysctl)
echo 1 >/proc/sys/net/ipv4/ip_forward
"${PODMAN[@]}" run -d --name "$NAME" "${ULIMITS[@]}" --network "ns:/proc/$$/ns/net" \
    --cap-add NET_ADMIN --device "$H_TMP/tun:/dev/net/tun" --health-interval disable \
    -e TOEGW_API=127.0.0.1:8080 -e TOEGW_NBD=127.0.0.1:10809 \
    "$IMAGE_TAG" >"$H_TMP/run.out" 2>&1 ||
    { h_fail image.run "$(tail -c 300 "$H_TMP/run.out")"; h_end; }
# ready: the API (HTTPS by the image's default) answers /readyz
wait_ready() {
    for _ in $(seq 150); do
        curl -sfk -o /dev/null -m 2 https://127.0.0.1:8080/readyz && return 0
        sleep 0.2
    done
    return 1
}
wait_ready
logs() { "${PODMAN[@]}" logs "$NAME" 2>&1 | tail -c 400 | tr '\n' ' '; }
h_check image.ready_over_https "$(logs)" curl -sfk -o /dev/null -m 2 https://127.0.0.1:8080/readyz
# the appliance's own certificate, trusted as its own CA by curl and libnbd
mkdir -p "$H_TMP/ca"
"${PODMAN[@]}" exec "$NAME" cat /var/lib/toegw/tls/server-cert.pem >"$H_TMP/ca/ca-cert.pem"
CACERT=$H_TMP/ca/ca-cert.pem
h_check image.healthcheck_healthy "$(logs)" "${PODMAN[@]}" healthcheck run "$NAME"
pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$NAME")
st() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$pid/status"; }
h_log "toegw in the container: pid $pid Uid $(st Uid) CapEff $(st CapEff)"
h_check image.process_not_root "Uid $(st Uid)" sh -c "test '$(st Uid)' != 0 && test -n '$(st Uid)'"
h_check image.process_net_admin_alone "CapEff $(st CapEff)" test "$(st CapEff)" = 0000000000001000

TOKEN=$("${PODMAN[@]}" exec "$NAME" cat /var/lib/toegw/api-token)
api() {
    local args=(-sS -m 30 -o "$H_TMP/api.json" -w '%{http_code}' -X "$1"
        -H "Authorization: Bearer $TOKEN")
    [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-raw "$3")
    curl --cacert "$CACERT" "${args[@]}" "https://127.0.0.1:8080$2" 2>>"$H_TMP/curl.err" || true
}
code=$(api POST /api/v1/sessions "$(jq -nc --arg t "${H_IQN[1]}" \
    '{portal: "198.51.100.1", target: $t, stack: "toe"}')")
h_check image.session_over_toe "answered $code: $(head -c 300 "$H_TMP/api.json")" \
    sh -c "test '$code' = 201 && jq -e '.connection.stack == \"toe\"' '$H_TMP/api.json' >/dev/null"
VOLID=$(jq -r '.luns[0].volume // empty' "$H_TMP/api.json")
api GET "/api/v1/volumes/$VOLID" >/dev/null
h_check image.export_is_nbds "$(head -c 300 "$H_TMP/api.json")" \
    sh -c "jq -e '.export | startswith(\"nbds://\")' '$H_TMP/api.json' >/dev/null"
h_run nbdcopy "nbds://127.0.0.1:10809/$VOLID?tls-certificates=$H_TMP/ca" "$H_TMP/copy.raw"
h_check image.nbds_read_byte_exact "$(h_last)" \
    sh -c "test $H_RC -eq 0 && cmp -s '$LUN' '$H_TMP/copy.raw'"
h_run nbdinfo --size "nbd://127.0.0.1:10809/$VOLID"
h_check image.plain_nbd_refused "$(h_last)" test "$H_RC" -ne 0
api GET /api/v1/info >/dev/null
h_check image.info_names_nat "$(head -c 300 "$H_TMP/api.json")" \
    sh -c "jq -e '.toe.mode == \"tap\" and .toe.nat == true' '$H_TMP/api.json' >/dev/null"

h_run "${PODMAN[@]}" stop -t 15 "$NAME"
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
h_check image.stops_cleanly "exit code $code: $(logs)" test "$code" = 0
h_check image.nat_rule_gone "nft tables: $(nft list tables 2>&1 | tr '\n' ' ')" \
    sh -c "! nft list tables | grep -q toegw_"
"${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1

# the uplink mode: the TOE a station on the SAN segment (a macvtap on san0), as the README
# runs it: root until the macvtap and its device node are made, then the user toegw
"${PODMAN[@]}" run -d --name "$NAME" "${ULIMITS[@]}" --network "ns:/proc/$$/ns/net" \
    --user 0 --cap-add NET_ADMIN --cap-add MKNOD --device-cgroup-rule 'c *:* rwm' \
    --health-interval disable -e TOEGW_TOE_NAT=0 \
    -e TOEGW_API=127.0.0.1:8080 -e TOEGW_NBD=127.0.0.1:10809 \
    "$IMAGE_TAG" serve --user toegw --toe-uplink san0 --toe-addr 198.51.100.3/24 \
    >"$H_TMP/run.out" 2>&1 ||
    { h_fail image.uplink_run "$(tail -c 300 "$H_TMP/run.out")"; h_end; }
wait_ready
"${PODMAN[@]}" exec "$NAME" cat /var/lib/toegw/tls/server-cert.pem >"$CACERT"
pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$NAME")
h_check image.uplink_runs_as_toegw "Uid $(st Uid) CapEff $(st CapEff): $(logs)" \
    sh -c "test '$(st Uid)' != 0 && test '$(st CapEff)' = 0000000000001000"
TOKEN=$("${PODMAN[@]}" exec "$NAME" cat /var/lib/toegw/api-token)
code=$(api POST /api/v1/sessions "$(jq -nc --arg t "${H_IQN[1]}" \
    '{portal: "198.51.100.1", target: $t, stack: "toe"}')")
h_check image.uplink_session_over_toe "answered $code: $(head -c 300 "$H_TMP/api.json")" \
    sh -c "test '$code' = 201 && jq -e '.connection.local | startswith(\"198.51.100.3:\")' '$H_TMP/api.json' >/dev/null"
h_check image.uplink_target_sees_the_toe "$(h_tgtadm --op show --mode conn --tid 1 2>&1 | tr '\n' ' ' | head -c 300)" \
    sh -c "timeout 10 tgtadm -C $H_TGTD_CPORT --lld iscsi --op show --mode conn --tid 1 | grep -q 'IP Address: 198.51.100.3'"
h_run "${PODMAN[@]}" stop -t 15 "$NAME"
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
h_check image.uplink_stops_cleanly "exit code $code: $(logs)" test "$code" = 0
h_end
