#!/usr/bin/env bash
# `toegw perf`: the load generator runs for the given time and `--json` prints exactly one
# JSON object with numeric iops, mb_per_s, cpu_user_s and cpu_sys_s that agree with each
# other; sequential/random reads and writes, against tgtd null and file LUNs.
# shellcheck source=lib/harness.sh
. "$(dirname "$0")/lib/harness.sh"
h_begin "$@"
h_need jq

h_tgtd_start
h_target_new 1 iqn.2024-01.org.example.toegw:perf
h_lun_null 1 1
h_lun_file 1 2 64M 4096

h_need_toegw

# perf_json NAME BYTES_PER_IO SECONDS ARGS... - runs `toegw perf ARGS -t SECONDS --json` and
# checks the object.
perf_json() {
    local name=$1 iosize=$2 secs=$3 t0 t1 wall mb_expect
    shift 3
    t0=$(date +%s.%N)
    h_run "$TOEGW" perf "$@" -t "$secs" --json --stack host
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    h_log "$name: $(head -c 400 "$H_OUT") (wall ${wall}s)"
    h_expect_ok "$name.exit0" || return
    if [ "$(jq -s 'length' <"$H_OUT" 2>/dev/null)" != 1 ] ||
        [ "$(jq -r 'type' <"$H_OUT" 2>/dev/null)" != object ]; then
        h_fail "$name.one_json_object" "expected one object, got: $(h__oneline "$(head -c 300 "$H_OUT")")"
        return
    fi
    h_pass "$name.one_json_object"
    h_check "$name.json_fields_numeric" \
        "iops, mb_per_s, cpu_user_s, cpu_sys_s must be numbers: $(h__oneline "$(cat "$H_OUT")")" \
        h_json '[.iops, .mb_per_s, .cpu_user_s, .cpu_sys_s] | all(type == "number")' "$H_OUT"
    h_check "$name.made_progress" "iops and mb_per_s must be > 0, cpu >= 0" \
        h_json '.iops > 0 and .mb_per_s > 0 and .cpu_user_s >= 0 and .cpu_sys_s >= 0' "$H_OUT"
    # MB/s = iops x bytes per I/O, in MB (10^6) or MiB (2^20), within 15 %.
    mb_expect=$(jq -r --argjson n "$iosize" '.iops * $n' <"$H_OUT")
    h_check "$name.mb_per_s_consistent" \
        "mb_per_s $(jq -r .mb_per_s <"$H_OUT") vs iops x $iosize bytes = $mb_expect B/s" \
        h_json "(.mb_per_s / ($mb_expect / 1000000)) as \$a | (.mb_per_s / ($mb_expect / 1048576)) as \$b
                | ((\$a > 0.85 and \$a < 1.15) or (\$b > 0.85 and \$b < 1.15))" "$H_OUT"
    h_check "$name.ran_for_${secs}s" "took ${wall}s of wall time for -t $secs" \
        awk -v w="$wall" -v s="$secs" 'BEGIN { exit !(w >= s * 0.9 && w <= s + 15) }'
    h_check "$name.cpu_within_wall" \
        "cpu $(jq -r '.cpu_user_s + .cpu_sys_s' <"$H_OUT") s > $(nproc) cores x ${wall}s" \
        h_json "(.cpu_user_s + .cpu_sys_s) <= $(nproc) * $wall + 0.5" "$H_OUT"
}

perf_json perf.read_128k_seq 131072 2 "$(h_url 1 1)" -b 256 -m 32
perf_json perf.read_4k_random 4096 2 "$(h_url 1 1)" -b 8 -m 32 --random
perf_json perf.write_4k_seq_null 4096 1 "$(h_url 1 1)" -b 8 -m 16 --write
perf_json perf.write_4k_random_file 4096 1 "$(h_url 1 2)" -b 1 -m 8 --write --random

# Text output, like iscsi-perf's.
h_run "$TOEGW" perf "$(h_url 1 1)" -b 8 -m 32 -t 1 --stack host
if h_expect_ok perf.text_exit0; then
    h_check perf.text_reports_iops "no 'iops' in: $(h__oneline "$(tail -c 300 "$H_OUT")")" \
        grep -qi iops "$H_OUT"
fi

# A LUN that does not exist: clean failure, quickly.
h_run "$TOEGW" perf "$(h_url 1 7)" -t 1 --stack host
h_expect_error perf.missing_lun_fails 1

h_end
