#!/usr/bin/env bash
# Benchmark: a confirmed off through the APC console over SSH, fencekit
# (`fence_fencekit_apc` with secure=1) against fence-agents' `fence_apc --ssh`, on the
# same console simulator (the `apc>` command line, and the numbered menus) running as
# the ForceCommand of a throwaway user of a real OpenSSH sshd on 127.0.0.1. Prints
# the median wall time of N runs and the peak memory, with ratios. Needs root (a
# local user for sshd); the user, sshd and files are removed at the end.
#
#   bash bench/apc-console.sh [RUNS]
set -euo pipefail
runs=${1:-10}
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
command -v fence_apc >/dev/null || { echo "missing: fence_apc" >&2; exit 1; }
# shellcheck source=bench/console-sshd.sh
. bench/console-sshd.sh
cargo build --release -q -p stonith-bridge -p fencekit-apc
console_sshd_start
state="$work/outlets"
lock="$work/session.lock"
sim="$PWD/target/release/fencekit-apc-console-sim"
mode_file="$work/mode"
echo cli > "$mode_file"
# The ForceCommand reads the mode from a file so one sshd serves both UIs.
cat > "$work/console" <<SH
#!/bin/sh
exec "$sim" --mode "\$(cat "$mode_file")" --state "$state" --lock "$lock"
SH
chmod 755 "$work/console"

reset_outlets() {
    : > "$state"
    for n in 1 2 3 4 5 6 7 8; do printf '1\t%s\ton\tOutlet %s\n' "$n" "$n" >> "$state"; done
    chmod 666 "$state"
}
ours_input() {
    printf 'action=off\nip=127.0.0.1\nipport=%s\nusername=%s\npassword=%s\nsecure=1\nknown_hosts=%s\nlock_dir=%s\nplug=3\n' \
        "$port" "$user" "$password" "$work/known_hosts" "$work/locks"
}
theirs_input() {
    printf 'action=off\nip=127.0.0.1\nipport=%s\nusername=%s\npassword=%s\nsecure=1\nssh_options=-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\nplug=3\n' \
        "$port" "$user" "$password"
}

measure() {
    local name=$1 input=$2; shift 2
    local times=()
    for _ in $(seq "$runs"); do
        reset_outlets
        local start end
        start=$(date +%s%N)
        "$input" | "$@" >"$work/out" 2>&1 || { echo "$name failed:"; cat "$work/out"; exit 1; }
        end=$(date +%s%N)
        grep -q $'^1\t3\toff' "$state" || { echo "$name: outlet 3 not off"; exit 1; }
        times+=($(( (end - start) / 1000 )))
    done
    reset_outlets
    "$input" | /usr/bin/time -f %M -o "$work/mem" "$@" >/dev/null 2>&1
    local median
    median=$(printf '%s\n' "${times[@]}" | median)
    printf '%-36s %10.1f %10s\n' "$name" "$(echo "$median / 1000" | bc -l)" "$(tail -1 "$work/mem")"
    echo "$name|$median|$(tail -1 "$work/mem")" >> "$work/results"
    bench_record "${name% *}" "confirmed off, ${name##* }" "$(echo "$median / 1000" | bc -l)"
}

echo "APC console over SSH (OpenSSH $(ssh -V 2>&1 | cut -d, -f1)), confirmed off of outlet 3, $runs runs each, $(nproc) cores"
printf '%-36s %10s %10s\n' "tool / console" "median ms" "peak KiB"
for mode in cli menu; do
    echo "$mode" > "$mode_file"
    measure "fencekit $mode" ours_input "$PWD/target/release/stonith-bridge" fence-agent apc
    measure "fence_apc --ssh $mode" theirs_input fence_apc
done
echo
python3 - "$work/results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, us, kib = line.strip().split("|")
    rows[name] = (float(us), int(kib))
for mode in ("cli", "menu"):
    o, t = rows[f"fencekit {mode}"], rows[f"fence_apc --ssh {mode}"]
    print(f"  {mode:5} fence_apc / fencekit: time x{t[0]/o[0]:4.1f}, memory x{t[1]/o[1]:4.1f}")
PY
