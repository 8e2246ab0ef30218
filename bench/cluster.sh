#!/usr/bin/env bash
# Scenario 1 of the cluster lab (a node of a 3-node Pacemaker cluster loses its link,
# is fenced, and its SANFilesystem + IPaddr2 group starts on another node), on the
# same lab (tests/src/cluster.rs) with every fencing device of type fence_ipmilan,
# then fence_fencekit_ipmi: seconds from the link cut to the node's power-off in the
# BMC hook's log (fenced), and to the shared filesystem mounted on another node (the
# mount oracle: service up). Each agent gets a fresh lab and RUNS repetitions; the
# table shows medians side by side and fencekit's time as a fraction of
# fence_ipmilan's. The lab is driven by an ignored test, so it never runs with the
# normal tests.
#
# Usage: bench/cluster.sh [RUNS]   (default 5; as root: the lab makes namespaces and
# a loop device, and undoes them)
# Prints its table on stdout (bench/report puts it in bench/RESULTS.md).

set -euo pipefail

RUNS=${1:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
WORKSPACE=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

[ "$(id -u)" = 0 ] || { echo "bench/cluster.sh: run as root (the lab makes namespaces)" >&2; exit 1; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for agent in fence_ipmilan fence_fencekit_ipmi; do
    echo "bench/cluster.sh: $agent, $RUNS runs ..." >&2
    (cd "$WORKSPACE" && FENCEKIT_REQUIRE_PEERS=1 FENCEKIT_BENCH_AGENT=$agent FENCEKIT_BENCH_RUNS=$RUNS \
        CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} \
        cargo test --locked -p fencekit-tests --test cluster -- --ignored --exact \
        bench_a_lost_node_is_fenced_and_its_group_moves_again_and_again --nocapture) \
        > "$WORK/$agent.out" 2>&1 || { tail -n 40 "$WORK/$agent.out" >&2; exit 1; }
    grep '^bench-cluster ' "$WORK/$agent.out" > "$WORK/$agent.runs" || true
    got=$(wc -l < "$WORK/$agent.runs")
    [ "$got" -eq "$RUNS" ] || { echo "bench/cluster.sh: $agent gave $got of $RUNS runs" >&2; exit 1; }
done

# median FILE COLUMN: the median of a column of numbers.
median() {
    awk -v c="$2" '{ print $c }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END { if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ipmilan_fenced=$(median "$WORK/fence_ipmilan.runs" 4)
ipmilan_up=$(median "$WORK/fence_ipmilan.runs" 5)
ours_fenced=$(median "$WORK/fence_fencekit_ipmi.runs" 4)
ours_up=$(median "$WORK/fence_fencekit_ipmi.runs" 5)
# The fence step's tail: from the power-off to the service up is the agent confirming
# the off and Pacemaker starting the group (the same for both), per run.
for agent in fence_ipmilan fence_fencekit_ipmi; do
    awk '{ printf "%s %.3f\n", $0, $5 - $4 }' "$WORK/$agent.runs" > "$WORK/$agent.tail"
done
ipmilan_tail=$(median "$WORK/fence_ipmilan.tail" 6)
ours_tail=$(median "$WORK/fence_fencekit_ipmi.tail" 6)
bench_record fence_ipmilan "node lost: fenced" "$(awk -v s="$ipmilan_fenced" 'BEGIN { print s * 1000 }')"
bench_record fencekit "node lost: fenced" "$(awk -v s="$ours_fenced" 'BEGIN { print s * 1000 }')"
bench_record fence_ipmilan "node lost: up" "$(awk -v s="$ipmilan_up" 'BEGIN { print s * 1000 }')"
bench_record fencekit "node lost: up" "$(awk -v s="$ours_up" 'BEGIN { print s * 1000 }')"

echo "3-node Pacemaker lab, node lost (link cut), median of $RUNS runs each, $(date -u +%F), $(nproc) cores"
echo "stonith-action=off, token 1000 ms; both agents: lanplus, cipher 3, power_timeout 10"
echo
printf '%-28s %14s %20s %8s\n' "seconds from the link cut" "fence_ipmilan" "fence_fencekit_ipmi" "ratio"
printf '%-28s %14s %20s %8s\n' "to fenced (power off)" "$ipmilan_fenced" "$ours_fenced" \
    "$(awk -v a="$ours_fenced" -v b="$ipmilan_fenced" 'BEGIN { printf "%.2f", a / b }')"
printf '%-28s %14s %20s %8s\n' "to service up elsewhere" "$ipmilan_up" "$ours_up" \
    "$(awk -v a="$ours_up" -v b="$ipmilan_up" 'BEGIN { printf "%.2f", a / b }')"
printf '%-28s %14s %20s %8s\n' "power-off to service up" "$ipmilan_tail" "$ours_tail" \
    "$(awk -v a="$ours_tail" -v b="$ipmilan_tail" 'BEGIN { printf "%.2f", a / b }')"
echo
echo "every run (agent, run, fenced s, up s):"
sed 's/^bench-cluster /  /' "$WORK/fence_ipmilan.runs" "$WORK/fence_fencekit_ipmi.runs"
