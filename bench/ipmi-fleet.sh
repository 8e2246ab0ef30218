#!/usr/bin/env bash
# Fleet benchmark (a script, not a test): one fencekit process drives many BMCs
# over one UDP socket.
#
#   bench/ipmi-fleet.sh [BMCS] [SIMS]     (defaults: 2000 test BMCs, 50 ipmi_sims)
#
# 1. BMCS of fencekit's test BMCs (the responder, one loopback socket each, in a
#    separate process): power status of all, then a confirmed off of all (core's
#    fence algorithm per node: off accepted, then read back off).
# 2. SIMS OpenIPMI ipmi_sims on consecutive ports: FreeIPMI's ipmipower with a host
#    range (`127.0.0.1:[A-B]`, --stat, then --off --wait-until-off) against
#    fencekit's fleet client on the same simulators.
# Prints wall time and peak resident memory of the driving process.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
BMCS=${1:-2000}
SIMS=${2:-50}
PATH=$PATH:/usr/sbin

echo "building the fleet example (release)..." >&2
cargo build --quiet --release -p fencekit-ipmi --example fleet
FLEET=${CARGO_TARGET_DIR:-target}/release/examples/fleet

source bench/ipmi-sim.sh
WORK=$(mktemp -d)
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2> /dev/null && wait "$SERVER" 2> /dev/null
    stop_ipmi_sims
    rm -rf "$WORK"
}
trap cleanup EXIT

# Runs "$@" with stdin from $WORK/in; prints "WALL_S RSS_MB" and keeps stdout in $WORK/out.
measure() {
    local start end
    start=$(date +%s%N)
    /usr/bin/time -f %M -o "$WORK/rss" "$@" < "$WORK/in" > "$WORK/out" 2>&1 || true
    end=$(date +%s%N)
    awk -v ns=$((end - start)) -v kb="$(tail -1 "$WORK/rss")" \
        'BEGIN {printf "%.3f %.1f\n", ns / 1e9, kb / 1024}'
}

echo "== $BMCS fencekit test BMCs, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo "$BENCH_PASSWORD" | "$FLEET" serve "$BMCS" "$WORK/ports" &
SERVER=$!
for _ in $(seq 1 200); do [ -e "$WORK/ports" ] && break; sleep 0.1; done
echo "$BENCH_PASSWORD" > "$WORK/in"
for op in status off; do
    read -r wall rss < <(measure "$FLEET" "$op" "$WORK/ports")
    echo "fencekit $op: $(cat "$WORK/out") | process wall ${wall} s, peak RSS ${rss} MiB"
    bench_record fencekit "$op, $BMCS test BMCs" "$(echo "$wall * 1000" | bc -l)"
done
kill "$SERVER" && wait "$SERVER" 2> /dev/null || true
SERVER=

echo
echo "== $SIMS ipmi_sims (suite 3 for ipmipower; fencekit: cipher auto, 17 then 3)"
for attempt in 1 2 3 4 5; do
    BASE=$((20000 + RANDOM % 30000))
    for i in $(seq 0 $((SIMS - 1))); do
        start_ipmi_sim "$WORK/sim$i" $((BASE + i))
    done
    ok=1
    for i in $(seq 0 $((SIMS - 1))); do
        wait_ipmi_sim $((BASE + i)) || { ok=0; break; }
    done
    [ "$ok" = 1 ] && break
    stop_ipmi_sims
    [ "$attempt" = 5 ] && { echo "ipmi_sims did not start" >&2; exit 1; }
done
LAST=$((BASE + SIMS - 1))
seq "$BASE" "$LAST" | sed 's/^/127.0.0.1:/' > "$WORK/sims"
power_on_all() {
    for i in $(seq 0 $((SIMS - 1))); do
        echo 1 > "$WORK/sim$i/power.state.new" && mv "$WORK/sim$i/power.state.new" "$WORK/sim$i/power.state"
    done
}
count_off() {
    grep -l '^0' "$WORK"/sim*/power.state | wc -l
}
printf 'username %s\npassword %s\n' "$BENCH_USER" "$BENCH_PASSWORD" > "$WORK/freeipmi.conf"
chmod 600 "$WORK/freeipmi.conf"
IPMIPOWER=(ipmipower --config-file="$WORK/freeipmi.conf" -D LAN_2_0 -I 3 -W opensesspriv -l ADMIN
    -h "127.0.0.1:[$BASE-$LAST]")

: > "$WORK/in"
power_on_all
read -r wall rss < <(measure "${IPMIPOWER[@]}" --stat)
echo "ipmipower --stat: $(grep -c ': on' "$WORK/out") of $SIMS on | wall ${wall} s, peak RSS ${rss} MiB"
IPP_STAT=$wall
bench_record ipmipower "status, $SIMS ipmi_sims" "$(echo "$wall * 1000" | bc -l)"
read -r wall rss < <(measure "${IPMIPOWER[@]}" --off --wait-until-off)
echo "ipmipower --off --wait-until-off: $(count_off) of $SIMS off | wall ${wall} s, peak RSS ${rss} MiB"
IPP_OFF=$wall
bench_record ipmipower "off, $SIMS ipmi_sims" "$(echo "$wall * 1000" | bc -l)"

echo "$BENCH_PASSWORD" > "$WORK/in"
power_on_all
read -r wall rss < <(measure "$FLEET" status "$WORK/sims")
echo "fencekit status: $(cat "$WORK/out") | wall ${wall} s, peak RSS ${rss} MiB"
OURS_STAT=$wall
bench_record fencekit "status, $SIMS ipmi_sims" "$(echo "$wall * 1000" | bc -l)"
read -r wall rss < <(measure "$FLEET" off "$WORK/sims")
echo "fencekit confirmed off: $(cat "$WORK/out"); $(count_off) of $SIMS read off | wall ${wall} s, peak RSS ${rss} MiB"
OURS_OFF=$wall
bench_record fencekit "off, $SIMS ipmi_sims" "$(echo "$wall * 1000" | bc -l)"
awk -v a="$IPP_STAT" -v b="$OURS_STAT" -v c="$IPP_OFF" -v d="$OURS_OFF" \
    'BEGIN {printf "ipmipower / fencekit wall time: status x%.2f, off x%.2f\n", a / b, c / d}'
