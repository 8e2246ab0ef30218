#!/usr/bin/env bash
# Sourced by the IPMI benchmarks: starts OpenIPMI ipmi_sim BMCs on 127.0.0.1 the way
# tests/src/ipmi_sim.rs does (a LAN configuration, the emulator commands, and a
# power program keeping the chassis state in a file), and stops them by PID.
#
#   start_ipmi_sim DIR PORT [MODE]   MODE: obey (default) | lie
#   stop_ipmi_sims                   kills every ipmi_sim this shell started

IPMI_SIM_PIDS=()
BENCH_USER=admin
# A throwaway password for a simulator on loopback, generated per run.
BENCH_PASSWORD="bench-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

start_ipmi_sim() {
    local dir=$1 port=$2 mode=${3:-obey}
    mkdir -p "$dir/state"
    echo 1 > "$dir/power.state"
    cat > "$dir/power-program" <<PROG
#!/bin/sh
dir='$dir'
mode='$mode'
echo "\$*" >> "\$dir/power.calls"
while [ \$# -gt 0 ] && [ "\$1" != get ] && [ "\$1" != set ]; do shift; done
case "\$1 \$2" in
"get power") echo "power:\$(cat "\$dir/power.state")" ;;
"set power")
    if [ "\$mode" != lie ] || [ "\$3" = 1 ]; then
        echo "\$3" > "\$dir/power.state.new" && mv "\$dir/power.state.new" "\$dir/power.state"
    fi ;;
esac
exit 0
PROG
    chmod 755 "$dir/power-program"
    local auths="none md2 md5 straight"
    cat > "$dir/lan.conf" <<CONF
name "bench"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 $port
    priv_limit admin
    allowed_auths_callback $auths
    allowed_auths_user $auths
    allowed_auths_operator $auths
    allowed_auths_admin $auths
    guid $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  endlan
  chassis_control "$dir/power-program"
user 2 true "$BENCH_USER" "$BENCH_PASSWORD" admin 10 $auths
CONF
    chmod 600 "$dir/lan.conf"
    printf 'mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\nmc_enable 0x20\n' > "$dir/cmds.emu"
    ipmi_sim -c "$dir/lan.conf" -f "$dir/cmds.emu" -s "$dir/state" -n > "$dir/log" 2>&1 &
    IPMI_SIM_PIDS+=($!)
}

stop_ipmi_sims() {
    local pid
    for pid in "${IPMI_SIM_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${IPMI_SIM_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    IPMI_SIM_PIDS=()
}

# Waits until ipmitool gets a power status from 127.0.0.1:PORT (at most ~10 s).
wait_ipmi_sim() {
    local port=$1 i
    for i in $(seq 1 40); do
        if IPMI_PASSWORD=$BENCH_PASSWORD ipmitool -I lanplus -C 3 -H 127.0.0.1 -p "$port" \
            -U "$BENCH_USER" -E -N 1 -R 1 chassis power status > /dev/null 2>&1; then
            return 0
        fi
        sleep 0.25
    done
    echo "ipmi_sim on port $port did not answer" >&2
    return 1
}
