#!/bin/bash
# Time and peak memory of one SAN path check of a 16-path device:
#   1. `stonith-bridge san-check --backend fc` on a 16-path FC sysfs fixture
#      (4 HBAs x 4 target ports, dm-multipath map over 16 disks; sysfs only);
#   2. `stonith-bridge san-check --backend powerpath` with a stand-in `powermt`
#      printing the 16 path rows of one pseudo device;
#   3. the seed scripts' way (qla-monitor.pl): a shell script that runs the same
#      stand-in `powermt` twice and greps the rows for qla/lpfc and "dead";
#   4. resource-agents' `storage_mon` one-shot (one O_DIRECT sector read of one
#      device; no path view), when installed, on a loop device (root) or a file.
#
# Usage: bench/san-check.sh [RUNS]   (default 50 runs of each)
# The binary: $STONITH_BRIDGE, else target/release/stonith-bridge under
# $CARGO_TARGET_DIR or the workspace. Needs GNU time (/usr/bin/time).
# Prints a Markdown section on stdout (append it to bench/RESULTS.md).

set -euo pipefail

RUNS=${1:-50}
HERE=$(cd "$(dirname "$0")" && pwd)
WORKSPACE=$(dirname "$HERE")
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"
BIN=${STONITH_BRIDGE:-${CARGO_TARGET_DIR:-$WORKSPACE/target}/release/stonith-bridge}
GNU_TIME=/usr/bin/time

[ -x "$BIN" ] || { echo "no stonith-bridge at $BIN: cargo build --release -p stonith-bridge, or set STONITH_BRIDGE" >&2; exit 1; }
[ -x "$GNU_TIME" ] || { echo "GNU time not found at $GNU_TIME (Debian package: time)" >&2; exit 1; }

WORK=$(mktemp -d)
LOOPDEV=
cleanup() {
    [ -n "$LOOPDEV" ] && losetup -d "$LOOPDEV" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

ROOT=$WORK/root
SYS=$ROOT/sys

# ---- 16-path FC fixture (layout of storage.md 1.3 and 3.5) ----
mkdir -p "$SYS/block" "$SYS/dev/block" "$SYS/class/fc_host" "$SYS/class/fc_remote_ports" \
    "$SYS/class/scsi_host" "$ROOT/proc/self" "$ROOT/dev/mapper" "$ROOT/run"
: > "$ROOT/proc/self/mountinfo"
letters=(c d e f g h i j k l m n o p q r)
slaves=()
i=0
for host in 3 4 5 6; do
    hdir=$SYS/devices/pci0000:00/0000:00:0$host.0/host$host
    mkdir -p "$hdir" "$SYS/class/fc_host/host$host" "$SYS/class/scsi_host/host$host"
    echo Online > "$SYS/class/fc_host/host$host/port_state"
    echo qla2xxx > "$SYS/class/scsi_host/host$host/proc_name"
    echo "Link Up - F_Port" > "$SYS/class/scsi_host/host$host/link_state"
    for n in 0 1 2 3; do
        rp=$SYS/class/fc_remote_ports/rport-$host:0-$n
        mkdir -p "$rp" "$hdir/rport-$host:0-$n"
        echo Online > "$rp/port_state"
        echo "FCP Target" > "$rp/roles"
        disk=sd${letters[$i]}
        devt=8:$((32 + 16 * i))
        sdev=$hdir/rport-$host:0-$n/target$host:0:$n/$host:0:$n:1
        mkdir -p "$sdev" "$SYS/block/$disk"
        echo running > "$sdev/state"
        echo "$devt" > "$SYS/block/$disk/dev"
        ln -s "$sdev" "$SYS/block/$disk/device"
        ln -s "$SYS/block/$disk" "$SYS/dev/block/$devt"
        slaves+=("$disk")
        i=$((i + 1))
    done
done
dm=$SYS/block/dm-3
mkdir -p "$dm/dm" "$dm/slaves"
echo mpatha > "$dm/dm/name"
echo mpath-36005076801810523a800000000000011 > "$dm/dm/uuid"
echo 253:3 > "$dm/dev"
for s in "${slaves[@]}"; do ln -s "$SYS/block/$s" "$dm/slaves/$s"; done
ln -s "$dm" "$SYS/dev/block/253:3"
ln -s ../dm-3 "$ROOT/dev/mapper/mpatha"

# ---- stand-in powermt: 16 rows for emcpowera, one dead ----
PM_OUT=$WORK/powermt.out
{
    echo "Pseudo name=emcpowera"
    echo "Symmetrix ID=000192601234"
    echo "Logical device ID=0A3F"
    echo "state=alive; policy=SymmOpt; priority=0; queued-IOs=0"
    echo "=============================================================================="
    echo "---------------- Host ---------------   - Stor -   -- I/O Path -  -- Stats ---"
    echo "###  HW Path                I/O Paths    Interf.   Mode    State  Q-IOs Errors"
    echo "=============================================================================="
    i=0
    for host in 3 4 5 6; do
        for n in 0 1 2 3; do
            state=alive
            [ $i -eq 5 ] && state=dead
            printf '   %d qla2xxx                   sd%s       FA %2dcA   active  %-5s      0      0\n' \
                "$host" "${letters[$i]}" "$((i + 1))" "$state"
            i=$((i + 1))
        done
    done
} > "$PM_OUT"
POWERMT=$WORK/powermt
printf '#!/bin/sh\ncat "%s"\n' "$PM_OUT" > "$POWERMT"
chmod 755 "$POWERMT"

# ---- the seed scripts' way: powermt twice, grep ----
SEED=$WORK/seed-qla-monitor.sh
cat > "$SEED" <<EOF
#!/bin/sh
# qla-monitor.pl, step for step (seed-scripts.md section 8)
name=\$(echo "\$1" | sed -n 's|^/dev/\([a-z]*\).*|\1|p')
[ -n "\$name" ] || { echo "poorly formated device name"; exit 1; }
total=\$("$POWERMT" display dev=\$name 2>&1 | grep -c -E 'qla|lpfc')
[ "\$total" -ge 1 ] || { echo "could not find device"; exit 1; }
dead=\$("$POWERMT" display dev=\$name 2>&1 | grep -E 'qla|lpfc' | grep -c dead)
[ "\$dead" -eq "\$total" ] && { echo "all paths to \$1 are dead"; exit 1; }
exit 0
EOF
chmod 755 "$SEED"

# ---- measuring ----
# mean wall time over RUNS (monotonic ns clock) and the largest peak RSS seen.
measure() {
    local label=$1; shift
    local start end max_rss=0 rss rc=0 expect
    expect=$("$@" >/dev/null 2>&1; echo $?) || true
    start=$(date +%s%N)
    for _ in $(seq "$RUNS"); do
        "$@" >/dev/null 2>&1 || true
    done
    end=$(date +%s%N)
    for _ in 1 2 3 4 5; do
        rss=$("$GNU_TIME" -f '%M' "$@" 2>&1 >/dev/null | tail -1) || true
        [ "$rss" -gt "$max_rss" ] && max_rss=$rss
    done
    local ms
    ms=$(echo "($end - $start) / $RUNS / 1000000" | bc -l)
    printf '| %s | %s | %.2f | %s |\n' "$label" "$expect" "$ms" "$max_rss"
    # The chart's tool is the label's first words, up to the first comma or colon.
    local tool=${label%%[:(,]*}
    bench_record "${tool% }" "SAN path check" "$ms"
}

echo "### SAN path check of one 16-path device ($(date -u +%Y-%m-%d), $RUNS runs each)"
echo
echo "Machine: $(nproc) CPUs, $(uname -sr); binary: release build of stonith-bridge."
echo
echo "| check | exit | mean wall ms | peak RSS KiB |"
echo "|---|---|---|---|"
measure "stonith-bridge san-check --backend fc (16 paths from sysfs)" \
    "$BIN" san-check --root "$ROOT" --backend fc --device /dev/mapper/mpatha --run-dir "$ROOT/run"
measure "stonith-bridge san-check --backend powerpath (stand-in powermt, 16 rows, 1 dead)" \
    "$BIN" san-check --root "$ROOT" --backend powerpath --powermt "$POWERMT" --device /dev/emcpowera --run-dir "$ROOT/run"
measure "seed style: sh + powermt twice + grep (same stand-in)" \
    "$SEED" /dev/emcpowera

STORAGE_MON=
for candidate in /usr/libexec/heartbeat/storage_mon /usr/lib/heartbeat/storage_mon "$(command -v storage_mon || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { STORAGE_MON=$candidate; break; }
done
if [ -n "$STORAGE_MON" ]; then
    target=$WORK/disk.img
    truncate -s 4M "$target"
    if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && LOOPDEV=$(losetup -f --show "$target" 2>/dev/null); then
        target=$LOOPDEV
        what="loop device"
    else
        what="plain file"
    fi
    measure "storage_mon one-shot, one O_DIRECT sector read ($what; no path view)" \
        "$STORAGE_MON" --device "$target" --score 1 --timeout 10
    agent=/usr/lib/ocf/resource.d/heartbeat/storage-mon
    [ -x "$agent" ] && echo && echo "The storage-mon agent ($agent) is installed too; its monitor needs pacemaker-attrd, so only the storage_mon binary is measured."
else
    echo
    echo "storage_mon is not installed (resource-agents ships it in /usr/libexec/heartbeat): not measured."
fi
echo
echo "Exit: san-check uses Nagios codes (0 ok, 1 degraded); the seed script exits 0 with a dead path (it reports only 'all dead'); storage_mon exits 0 when the read worked."
