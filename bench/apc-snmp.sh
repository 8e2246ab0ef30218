#!/usr/bin/env bash
# Benchmark: a confirmed off and a status through an APC rPDU over SNMP, with
# fencekit (`fence_fencekit_apc`) and the tools users would pick instead
# (fence-agents' fence_apc_snmp, net-snmp's snmpget), against the same net-snmp
# snmpd with fencekit's emulated PDU behind it, in one run. Prints the median wall
# time of N runs, the SNMP datagrams each run sent (counted with strace), the peak
# memory (GNU time), and ratios. Loopback only; the community and v3 pass phrases
# are throwaway values for this run, given to every tool on stdin or in a config
# file (snmpget: a client config), never in argv.
#
#   bash bench/apc-snmp.sh [RUNS]        (root not needed; needs snmpd, snmp,
#                                          fence-agents, strace, time)
set -euo pipefail
runs=${1:-10}
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
for tool in snmpd snmpget fence_apc_snmp strace /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install snmpd snmp fence-agents strace time)" >&2; exit 1; }
done
cargo build --release -q -p stonith-bridge -p fencekit-apc
work=$(mktemp -d)
snmpd_pid=
cleanup() { [ -n "$snmpd_pid" ] && kill "$snmpd_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ours="$work/fence_fencekit_apc"
ln -s "$PWD/target/release/stonith-bridge" "$ours"
community="bench-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
auth="auth-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
priv="priv-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
port=$(python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
state="$work/pdu.state"
reset_pdu() {
    { echo "family rpdu"; echo "reboot_ms 1000"; for n in 1 2 3 4 5 6 7 8; do echo "outlet 1 $n on obey - outlet-$n"; done; } > "$state"
}
reset_pdu
printf '#!/bin/sh\nexec %s %s\n' "$PWD/target/release/fencekit-apc-snmp-sim" "$state" > "$work/pdu-sim"
chmod 755 "$work/pdu-sim"
cat > "$work/snmpd.conf" <<CONF
rwcommunity $community 127.0.0.1
sysObjectID .1.3.6.1.4.1.318.1.3.4.5
pass_persist .1.3.6.1.4.1.318 $work/pdu-sim
createUser benchuser SHA "$auth" AES "$priv"
rwuser benchuser priv
CONF
mkdir -p "$work/persist"
SNMP_PERSISTENT_DIR="$work/persist" MIBS= snmpd -f -Lf "$work/snmpd.log" -C -c "$work/snmpd.conf" "udp:127.0.0.1:$port" &
snmpd_pid=$!
printf 'defCommunity %s\n' "$community" > "$work/snmp.conf"
for _ in $(seq 50); do
    SNMPCONFPATH="$work" MIBS= snmpget -v1 -r0 -t1 "127.0.0.1:$port" .1.3.6.1.2.1.1.2.0 >/dev/null 2>&1 && break
    sleep 0.1
done

v1() { printf 'action=%s\nip=127.0.0.1\nipport=%s\ncommunity=%s\nsnmp_version=1\nplug=%s\n' "$1" "$port" "$community" "$2"; }
v3() { printf 'action=%s\nip=127.0.0.1\nipport=%s\nsnmp_version=3\nusername=benchuser\npassword=%s\nsnmp_auth_prot=SHA\nsnmp_sec_level=authPriv\nsnmp_priv_prot=AES\nsnmp_priv_passwd=%s\nplug=%s\n' "$1" "$port" "$auth" "$priv" "$2"; }

# measure NAME INPUT-FUNCTION ACTION COMMAND...: median ms, datagrams sent, peak KiB.
measure() {
    local name=$1 input=$2 action=$3; shift 3
    local times=() sent=0 peak=0
    for i in $(seq "$runs"); do
        reset_pdu
        local start end
        start=$(date +%s%N)
        if [ "$input" = none ]; then "$@" >/dev/null 2>&1 || true
        else "$input" "$action" 3 | "$@" >/dev/null 2>&1 || true; fi
        end=$(date +%s%N)
        times+=($(( (end - start) / 1000 )))
    done
    reset_pdu
    if [ "$input" = none ]; then
        strace -f -qq -yy -e trace=sendto,sendmsg,write -o "$work/trace" "$@" >/dev/null 2>&1 || true
        /usr/bin/time -f %M -o "$work/mem" "$@" >/dev/null 2>&1 || true
    else
        "$input" "$action" 3 | strace -f -qq -yy -e trace=sendto,sendmsg,write -o "$work/trace" "$@" >/dev/null 2>&1 || true
        reset_pdu
        "$input" "$action" 3 | /usr/bin/time -f %M -o "$work/mem" "$@" >/dev/null 2>&1 || true
    fi
    # Datagrams to the agent's port, connected sockets (fd shows ...->127.0.0.1:PORT)
    # or not (sin_port=htons(PORT)).
    sent=$(grep "UDP" "$work/trace" | grep -c -- "->127.0.0.1:$port\]\|htons($port)" || true)
    peak=$(tail -1 "$work/mem")
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
    printf '%-34s %10.1f %9s %10s\n' "$name" "$(echo "$median / 1000" | bc -l)" "$sent" "$peak"
    echo "$name $median $sent $peak" >> "$work/results"
    local op=${name#* }
    bench_record "${name%% *}" "${op% (confirmed)}" "$(echo "$median / 1000" | bc -l)"
}

echo "APC rPDU over SNMP, snmpd $(snmpd -v | awk '/version/ {print $NF; exit}'), $runs runs each, $(nproc) cores"
printf '%-34s %10s %9s %10s\n' "tool / action" "median ms" "sent" "peak KiB"
measure "fencekit v1 status" v1 status "$ours"
measure "fence_apc_snmp v1 status" v1 status fence_apc_snmp
measure "fencekit v1 off (confirmed)" v1 off "$ours"
measure "fence_apc_snmp v1 off" v1 off fence_apc_snmp
measure "fencekit v3 authPriv off" v3 off "$ours"
measure "fence_apc_snmp v3 authPriv off" v3 off fence_apc_snmp
measure "snmpget v1 (one raw read)" none - env SNMPCONFPATH="$work" MIBS= snmpget -v1 "127.0.0.1:$port" .1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.3

echo
echo "ratios (fence_apc_snmp / fencekit):"
python3 - "$work/results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    *name, ms, sent, kib = line.split()
    rows[" ".join(name)] = (float(ms) / 1000, int(sent), int(kib))
pairs = [("v1 status", "fencekit v1 status", "fence_apc_snmp v1 status"),
         ("v1 off", "fencekit v1 off (confirmed)", "fence_apc_snmp v1 off"),
         ("v3 authPriv off", "fencekit v3 authPriv off", "fence_apc_snmp v3 authPriv off")]
for label, ours, theirs in pairs:
    o, t = rows[ours], rows[theirs]
    print(f"  {label:18} time x{t[0]/o[0]:5.1f}   memory x{t[2]/o[2]:4.1f}   datagrams sent {o[1]} vs {t[1]}")
PY
