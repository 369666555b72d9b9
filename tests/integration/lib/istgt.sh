# shellcheck shell=bash
#
# istgt.sh - Debian's istgt as a second iSCSI target for the integration tests (sourced after
# lib/harness.sh and h_begin, never run).
#
# istgt never sees the system's /etc/istgt: each test writes its own istgt.conf and
# auth.conf into $ISTGT_DIR (under $H_TMP, on tmpfs), backs every LUN with a sparse file
# there, and runs `istgt -c $ISTGT_DIR/istgt.conf -D` in the foreground inside the test's
# private network namespace. Its pid is registered with the harness, whose EXIT trap stops
# it by pid (SIGTERM, then SIGKILL). The unit controller (istgtcontrol's port) gets no
# portal, so istgt listens on one port only.
#
# Usage:
#   istgt_auth_group 1 alice Secret1234567            # one-way CHAP user of AuthGroup1
#   istgt_auth_group 2 bob Secret2345678 tgt Secret3456789   # ... and the target's own
#   istgt_lu 1 disk1 32M                               # open LU, digests as the initiator likes
#   istgt_lu 2 hdig 16M --digest Header                # a LU that insists on header digests
#   istgt_lu 3 chap 16M --chap 1                       # one-way CHAP with AuthGroup1
#   istgt_lu 4 mutual 16M --chap 2 --mutual            # mutual CHAP with AuthGroup2
#   istgt_start                                        # listens on $ISTGT_ADDR:$ISTGT_PORT
#   "$TOEGW" luns "$(istgt_target_url 1)"
#
# Environment: ISTGT_ADDR (the address istgt binds, default 127.0.0.1; 0.0.0.0 when a test
# reaches it through the TOE at 192.0.2.1 too, an address that exists only once toegw made its
# TAP), ISTGT_PORT (default: a free port in 3261..3299, never tgtd's 3260), ISTGT_TRACE
# (istgt's -t flag, default none; "iscsi" logs every negotiated key into istgt.log).

ISTGT_IQN_BASE=iqn.2024-01.org.example.istgt
ISTGT_DIR=
ISTGT_PID=
ISTGT_ADDR=${ISTGT_ADDR:-127.0.0.1}
ISTGT_PORT=${ISTGT_PORT:-}
ISTGT_LUS=
declare -A ISTGT_IQN=()

istgt__dir() {
    if [ -z "$ISTGT_DIR" ]; then
        h__require_netns
        ISTGT_DIR=$H_TMP/istgt
        mkdir -p "$ISTGT_DIR" || { h_fail "$H_TEST.istgt" "cannot create $ISTGT_DIR"; h_end; }
        : >"$ISTGT_DIR/auth.conf"
    fi
}

# istgt_auth_group N USER SECRET [TARGET_USER TARGET_SECRET] - one Auth line of AuthGroupN
# (called again with the same N, it adds a user; the group's section is written once).
istgt_auth_group() {
    istgt__dir
    grep -qx "\[AuthGroup$1\]" "$ISTGT_DIR/auth.conf" ||
        printf '[AuthGroup%s]\n' "$1" >>"$ISTGT_DIR/auth.conf"
    if [ $# -ge 5 ]; then
        printf '  Auth "%s" "%s" "%s" "%s"\n' "$2" "$3" "$4" "$5" >>"$ISTGT_DIR/auth.conf"
    else
        printf '  Auth "%s" "%s"\n' "$2" "$3" >>"$ISTGT_DIR/auth.conf"
    fi
}

# istgt_lun_path N LUN - the backing file of LUN of LogicalUnitN.
istgt_lun_path() {
    printf '%s/lu%s-lun%s.img' "$ISTGT_DIR" "$1" "$2"
}

# istgt_lu N NAME SIZE [--lun1 SIZE] [--digest "Header Data"|Header|Data|Auto]
#          [--chap GROUP [--mutual]] - LogicalUnitN, target $ISTGT_IQN_BASE:NAME, LUN 0 (and
#          LUN 1) backed by sparse files of SIZE (M or G suffix, as istgt reads it).
istgt_lu() {
    local n=$1 name=$2 size=$3 lun1='' digest=Auto auth=None group='' f
    shift 3
    while [ $# -gt 0 ]; do
        case $1 in
            --lun1) lun1=$2; shift 2 ;;
            --digest) digest=$2; shift 2 ;;
            --chap) auth=CHAP; group=$2; shift 2 ;;
            --mutual) auth="CHAP Mutual"; shift ;;
            *) h_fail "$H_TEST.istgt" "istgt_lu: unknown option $1"; h_end ;;
        esac
    done
    istgt__dir
    f=$(istgt_lun_path "$n" 0)
    truncate -s "$size" "$f" || { h_fail "$H_TEST.istgt" "cannot create $f"; h_end; }
    {
        printf '[LogicalUnit%s]\n' "$n"
        printf '  TargetName %s:%s\n' "$ISTGT_IQN_BASE" "$name"
        printf '  Mapping PortalGroup1 InitiatorGroup1\n'
        printf '  AuthMethod %s\n' "$auth"
        [ -n "$group" ] && printf '  AuthGroup AuthGroup%s\n' "$group"
        printf '  UseDigest %s\n' "$digest"
        printf '  UnitType Disk\n'
        printf '  LUN0 Storage %s %sB\n' "$f" "$size"
        if [ -n "$lun1" ]; then
            f=$(istgt_lun_path "$n" 1)
            truncate -s "$lun1" "$f" || { h_fail "$H_TEST.istgt" "cannot create $f"; h_end; }
            printf '  LUN1 Storage %s %sB\n' "$f" "$lun1"
        fi
    } >>"$ISTGT_DIR/lus.conf"
    ISTGT_IQN[$n]=$ISTGT_IQN_BASE:$name
    ISTGT_LUS="$ISTGT_LUS $n"
}

istgt__write_conf() {
    {
        cat <<EOF
# written by tests/integration/lib/istgt.sh for one test; never the system's /etc/istgt
[Global]
  NodeBase "$ISTGT_IQN_BASE"
  PidFile $ISTGT_DIR/istgt.pid
  AuthFile $ISTGT_DIR/auth.conf
  MediaDirectory $ISTGT_DIR
  LogFacility "local7"
  Timeout 30
  NopInInterval 20
  DiscoveryAuthMethod Auto
  MaxSessions 16
  MaxConnections 4
  MaxR2T 32
  MaxOutstandingR2T 16
  DefaultTime2Wait 2
  DefaultTime2Retain 60
  FirstBurstLength 262144
  MaxBurstLength 1048576
  MaxRecvDataSegmentLength 262144
  InitialR2T Yes
  ImmediateData Yes
  DataPDUInOrder Yes
  DataSequenceInOrder Yes
  ErrorRecoveryLevel 0

# istgt requires this section; without a Portal no controller port is opened
[UnitControl]
  AuthMethod CHAP Mutual
  AuthGroup AuthGroup10000

[PortalGroup1]
  Portal DA1 $ISTGT_ADDR:$ISTGT_PORT

[InitiatorGroup1]
  InitiatorName "ALL"
  Netmask 127.0.0.0/8
  Netmask 192.0.2.0/24

EOF
        cat "$ISTGT_DIR/lus.conf"
    } >"$ISTGT_DIR/istgt.conf"
}

# istgt_start - istgt with the LUs declared so far, listening on $ISTGT_ADDR:$ISTGT_PORT
# (another port is tried when that one is taken). Ends the test when it does not start.
istgt_start() {
    h__require_netns
    h_need istgt ss
    istgt__dir
    [ -n "$ISTGT_LUS" ] || { h_fail "$H_TEST.istgt" "istgt_start: no LU declared"; h_end; }
    local fixed=$ISTGT_PORT try
    for try in 1 2 3 4 5 6; do
        [ -n "$fixed" ] || ISTGT_PORT=$((3261 + (RANDOM + try * 7) % 39))
        if h__listening "$ISTGT_PORT"; then
            [ -n "$fixed" ] && break
            continue
        fi
        istgt__write_conf
        istgt -c "$ISTGT_DIR/istgt.conf" -D -t "${ISTGT_TRACE:-none}" \
            >"$ISTGT_DIR/istgt.log" 2>&1 </dev/null &
        ISTGT_PID=$!
        h_bg_register "$ISTGT_PID"
        for _ in $(seq 100); do
            kill -0 "$ISTGT_PID" 2>/dev/null || break
            if h__listening "$ISTGT_PORT"; then
                h_log "istgt pid $ISTGT_PID on $ISTGT_ADDR:$ISTGT_PORT, config $ISTGT_DIR"
                return 0
            fi
            sleep 0.05
        done
        h__kill_pid "$ISTGT_PID"
        ISTGT_PID=
        [ -n "$fixed" ] && break
    done
    h_fail "$H_TEST.istgt" \
        "istgt did not start: $(h__oneline "$(tail -c 300 "$ISTGT_DIR/istgt.log" 2>/dev/null)")"
    h_end
}

# istgt_alive - istgt still runs.
istgt_alive() {
    [ -n "$ISTGT_PID" ] && kill -0 "$ISTGT_PID" 2>/dev/null
}

# istgt_url N LUN [QUERY [USERINFO [HOST]]] - iscsi://[USERINFO@]HOST:PORT/IQN/LUN[?QUERY],
# HOST 127.0.0.1 unless given (192.0.2.1 through the TOE).
istgt_url() {
    local q=${3:-} u=${4:-} host=${5:-127.0.0.1}
    printf 'iscsi://%s%s:%s/%s/%s%s' "${u:+$u@}" "$host" "$ISTGT_PORT" "${ISTGT_IQN[$1]}" \
        "$2" "${q:+?$q}"
}

# istgt_target_url N [QUERY [USERINFO [HOST]]] - the target without a LUN, for `toegw luns`.
istgt_target_url() {
    local q=${2:-} u=${3:-} host=${4:-127.0.0.1}
    printf 'iscsi://%s%s:%s/%s%s' "${u:+$u@}" "$host" "$ISTGT_PORT" "${ISTGT_IQN[$1]}" \
        "${q:+?$q}"
}

# istgt_logins_since LINE - istgt's "Login from" lines after line LINE of its log (one per
# session: initiator, target, digests as istgt runs them).
istgt_logins_since() {
    tail -n +"$(($1 + 1))" "$ISTGT_DIR/istgt.log" | grep '^Login'
}

# istgt_log_lines - the number of lines in istgt's log so far.
istgt_log_lines() {
    grep -c '' "$ISTGT_DIR/istgt.log"
}
