#!/usr/bin/env bash
# IPMI benchmark (a script, not a test): fencekit's native client against the tools
# people use today, in one run against the same OpenIPMI ipmi_sim on 127.0.0.1.
#
#   bench/ipmi.sh [RUNS]        (default 10 runs per tool and operation)
#
# For status, off (confirmed where the tool can confirm) and reboot it prints the
# median wall time, the UDP datagrams on the wire (sent + received, counted with
# strace in one extra run), and the peak resident memory (/usr/bin/time). Needs:
# openipmi, ipmitool, freeipmi-tools, fence-agents, strace, time, and cargo.
# Passwords never go to argv: stdin for fencekit and fence_ipmilan, IPMI_PASSWORD
# (-E) for ipmitool, a mode-600 config file for ipmipower.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
RUNS=${1:-10}

for tool in ipmi_sim ipmitool ipmipower fence_ipmilan strace /usr/bin/time cargo; do
    if ! command -v "$tool" > /dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        echo "bench/ipmi.sh: $tool is not installed" >&2
        exit 1
    fi
done
PATH=$PATH:/usr/sbin

# STONITH_BRIDGE=PATH benchmarks an existing binary instead of building one.
if [ -n "${STONITH_BRIDGE:-}" ]; then
    OURS=$STONITH_BRIDGE
else
    echo "building stonith-bridge (release)..." >&2
    cargo build --quiet --release -p stonith-bridge
    OURS=${CARGO_TARGET_DIR:-target}/release/stonith-bridge
fi

source bench/ipmi-sim.sh
WORK=$(mktemp -d)
cleanup() {
    stop_ipmi_sims
    rm -rf "$WORK"
}
trap cleanup EXIT

# A free-looking port: ipmi_sim fails to start on a used one, and we retry.
for attempt in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 20000))
    start_ipmi_sim "$WORK/bmc" "$PORT"
    if wait_ipmi_sim "$PORT"; then break; fi
    stop_ipmi_sims
    [ "$attempt" = 5 ] && { echo "ipmi_sim did not start" >&2; exit 1; }
done
STATE=$WORK/bmc/power.state
printf 'username %s\npassword %s\n' "$BENCH_USER" "$BENCH_PASSWORD" > "$WORK/freeipmi.conf"
chmod 600 "$WORK/freeipmi.conf"

agent_input() { # ACTION [extra key=value lines]
    printf 'action=%s\nip=127.0.0.1\nipport=%s\nusername=%s\npassword=%s\n' \
        "$1" "$PORT" "$BENCH_USER" "$BENCH_PASSWORD"
    shift
    for line in "$@"; do printf '%s\n' "$line"; done
}

# The command line of TOOL doing OP; its stdin is in $WORK/in. Empty: not offered.
command_for() {
    local tool=$1 op=$2
    case "$tool:$op" in
    fencekit:*) agent_input "$op" > "$WORK/in"; echo "$OURS fence-agent ipmi" ;;
    fencekit-C3:*) agent_input "$op" cipher=3 > "$WORK/in"; echo "$OURS fence-agent ipmi" ;;
    fence_ipmilan:*)
        agent_input "$op" lanplus=1 cipher=3 > "$WORK/in"; echo "fence_ipmilan" ;;
    ipmitool:status | ipmitool:off)
        : > "$WORK/in"
        local word=status; [ "$op" = off ] && word=off
        echo "ipmitool -I lanplus -C 3 -H 127.0.0.1 -p $PORT -U $BENCH_USER -E chassis power $word" ;;
    ipmipower:status | ipmipower:off)
        : > "$WORK/in"
        local what=--stat; [ "$op" = off ] && what="--off --wait-until-off"
        echo "ipmipower --config-file=$WORK/freeipmi.conf -D LAN_2_0 -I 3 -W opensesspriv -l ADMIN -h 127.0.0.1:$PORT $what" ;;
    *) echo "" ;;
    esac
}

prepare() { # OP: off and reboot start from a machine that is on
    echo 1 > "$STATE.new" && mv "$STATE.new" "$STATE"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

declare -A MS DGRAMS RSS
TOOLS=(fencekit fencekit-C3 ipmitool ipmipower fence_ipmilan)
OPS=(status off reboot)
export IPMI_PASSWORD=$BENCH_PASSWORD
for tool in "${TOOLS[@]}"; do
    for op in "${OPS[@]}"; do
        cmd=$(command_for "$tool" "$op")
        [ -z "$cmd" ] && continue
        times=()
        peak=0
        for _ in $(seq 1 "$RUNS"); do
            prepare "$op"
            start=$(date +%s%N)
            # shellcheck disable=SC2086
            /usr/bin/time -f %M -o "$WORK/rss" $cmd < "$WORK/in" > "$WORK/out" 2>&1 || true
            end=$(date +%s%N)
            times+=($(((end - start) / 1000)))
            rss=$(tail -1 "$WORK/rss")
            [ "$rss" -gt "$peak" ] && peak=$rss
        done
        MS[$tool:$op]=$(printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1/1000}')
        RSS[$tool:$op]=$(awk -v k="$peak" 'BEGIN {printf "%.1f", k/1024}')
        prepare "$op"
        # shellcheck disable=SC2086
        strace -f -qq -yy -e trace=sendto,sendmsg,recvfrom,recvmsg,read,write \
            -o "$WORK/strace" $cmd < "$WORK/in" > /dev/null 2>&1 || true
        DGRAMS[$tool:$op]=$(grep 'UDP:' "$WORK/strace" | grep -E "htons\($PORT\)|:$PORT\]" |
            grep -vc '= -1 ' || true)
        if ! grep -qiE 'on|off|success|ok' "$WORK/out"; then
            echo "warning: $tool $op printed: $(head -c 300 "$WORK/out")" >&2
        fi
    done
done

echo
echo "IPMI against one ipmi_sim on 127.0.0.1:$PORT, median of $RUNS runs, $(date -u +%Y-%m-%d), $(nproc) cores"
echo "fencekit: cipher auto (17 refused by ipmi_sim, then 3); fencekit-C3: cipher=3; others: suite 3"
echo "off: fencekit, fencekit-C3, ipmipower (--wait-until-off) and fence_ipmilan confirm; ipmitool does not"
printf '\n%-14s %-7s %10s %10s %12s\n' tool op "median ms" datagrams "peak RSS MB"
for tool in "${TOOLS[@]}"; do
    for op in "${OPS[@]}"; do
        [ -z "${MS[$tool:$op]:-}" ] && continue
        printf '%-14s %-7s %10s %10s %12s\n' "$tool" "$op" "${MS[$tool:$op]}" \
            "${DGRAMS[$tool:$op]}" "${RSS[$tool:$op]}"
        bench_record "$tool" "$op" "${MS[$tool:$op]}"
    done
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
for op in "${OPS[@]}"; do
    echo "fence_ipmilan / fencekit, $op: time x$(ratio "${MS[fence_ipmilan:$op]}" "${MS[fencekit:$op]}"), datagrams x$(ratio "${DGRAMS[fence_ipmilan:$op]}" "${DGRAMS[fencekit:$op]}")"
done
echo "ipmitool / fencekit peak memory (status): x$(ratio "${RSS[ipmitool:status]}" "${RSS[fencekit:status]}")"
echo "ipmipower / fencekit, status: time x$(ratio "${MS[ipmipower:status]}" "${MS[fencekit:status]}"), memory x$(ratio "${RSS[ipmipower:status]}" "${RSS[fencekit:status]}")"
