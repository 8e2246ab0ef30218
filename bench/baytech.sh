#!/usr/bin/env bash
# Benchmark: a confirmed off of a Baytech outlet through the SSH console, fencekit
# (`fence_fencekit_baytech`) on the Baytech simulator running as the ForceCommand of
# a throwaway user of a real OpenSSH sshd on 127.0.0.1: a strip alone (`direct`), a
# strip behind a DS/MMP management module (`module`), and an RPC strip that greets
# with its main menu (`menu`). Prints the median wall time of N runs and the peak
# memory. No other tool drives these consoles over SSH (cluster-glue's `baytech`
# speaks telnet), so the comparison is with fencekit's own earlier numbers (in
# bench/notes/baytech.md). Needs root; the user, sshd and files are removed at the end.
#
#   bash bench/baytech.sh [RUNS]
set -euo pipefail
runs=${1:-10}
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
# shellcheck source=bench/console-sshd.sh
. bench/console-sshd.sh
cargo build --release -q -p stonith-bridge -p fencekit-baytech
console_sshd_start
state="$work/outlets"
lock="$work/session.lock"
sim="$PWD/target/release/fencekit-baytech-sim"
mode_file="$work/mode"
echo direct > "$mode_file"
cat > "$work/console" <<SH
#!/bin/sh
exec "$sim" --mode "\$(cat "$mode_file")" --strips 2 --state "$state" --lock "$lock"
SH
chmod 755 "$work/console"

reset_outlets() {
    : > "$state"
    for s in 1 2; do
        for n in 1 2 3 4 5 6 7 8; do printf '%s\t%s\ton\tOutlet %s\n' "$s" "$n" "$n" >> "$state"; done
    done
    chmod 666 "$state"
}
input() {
    printf 'action=off\nip=127.0.0.1\nipport=%s\nusername=%s\npassword=%s\nknown_hosts=%s\nlock_dir=%s\nplug=3\n' \
        "$port" "$user" "$password" "$work/known_hosts" "$work/locks"
}

measure() {
    local mode=$1 times=()
    echo "$mode" > "$mode_file"
    for _ in $(seq "$runs"); do
        reset_outlets
        local start end
        start=$(date +%s%N)
        input | "$PWD/target/release/stonith-bridge" fence-agent baytech >"$work/out" 2>&1 \
            || { echo "fencekit $mode failed:"; cat "$work/out"; exit 1; }
        end=$(date +%s%N)
        grep -q $'^1\t3\toff' "$state" || { echo "fencekit $mode: outlet 3 not off"; exit 1; }
        times+=($(( (end - start) / 1000 )))
    done
    reset_outlets
    input | /usr/bin/time -f %M -o "$work/mem" "$PWD/target/release/stonith-bridge" fence-agent baytech >/dev/null 2>&1
    local ms
    ms=$(printf '%s\n' "${times[@]}" | median)
    printf '%-28s %10.1f %10s\n' "fencekit $mode" "$(echo "$ms / 1000" | bc -l)" "$(tail -1 "$work/mem")"
    bench_record fencekit "confirmed off, $mode" "$(echo "$ms / 1000" | bc -l)"
}

echo "Baytech console over SSH (OpenSSH $(ssh -V 2>&1 | cut -d, -f1)), confirmed off of outlet 3, $runs runs each, $(nproc) cores"
printf '%-28s %10s %10s\n' "tool / console" "median ms" "peak KiB"
for mode in direct module menu; do
    measure "$mode"
done
