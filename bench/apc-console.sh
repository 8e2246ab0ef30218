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
[ "$(id -u)" -eq 0 ] || { echo "run as root (it creates a throwaway local user for sshd)" >&2; exit 1; }
for tool in /usr/sbin/sshd ssh-keygen fence_apc /usr/bin/time useradd chpasswd userdel; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
cargo build --release -q -p stonith-bridge -p fencekit-apc
work=$(mktemp -d)
# The simulator runs as the throwaway user: it writes its state and lock here.
chmod 1777 "$work"
user="fkbench$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
password="pw-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
sshd_pid=
made_privsep=0
cleanup() {
    [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null && wait "$sshd_pid" 2>/dev/null
    pkill -u "$user" 2>/dev/null || true
    sleep 0.2
    userdel -r "$user" 2>/dev/null || userdel "$user" 2>/dev/null || true
    # The per-connection sshd processes go a moment after the listener.
    for _ in 1 2 3 4 5 6 7 8 9 10; do pgrep -x sshd >/dev/null || break; sleep 0.2; done
    if [ "$made_privsep" = 1 ] && ! pgrep -x sshd >/dev/null; then rmdir /run/sshd 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
useradd -M -d "$work" -s /bin/sh "$user"
echo "$user:$password" | chpasswd
[ -d /run/sshd ] || { mkdir -p /run/sshd; chmod 755 /run/sshd; made_privsep=1; }
ssh-keygen -q -t ed25519 -N '' -f "$work/host_ed25519"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
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
cat > "$work/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $work/host_ed25519
PidFile $work/sshd.pid
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
UsePAM yes
PrintMotd no
AllowUsers $user
MaxStartups 100
Match User $user
    ForceCommand $work/console
CONF
chmod 600 "$work/sshd_config"
/usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
sshd_pid=$!
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
done
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$work/host_ed25519.pub")" > "$work/known_hosts"
chmod 644 "$work/known_hosts"

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
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
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
