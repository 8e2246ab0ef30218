#!/usr/bin/env bash
# Redfish benchmark (a script, not a test): fencekit's `redfish` plugin against
# fence-agents' `fence_redfish`, in one run against the same Redfish service on
# 127.0.0.1 over HTTPS, both verifying its certificate (ours with ssl_ca_file,
# fence_redfish through REQUESTS_CA_BUNDLE). The service is fencekit's test responder
# (tests/src/redfish_responder.py), which switches at once: sushy-emulator's random
# 1-11 s power delays would drown the comparison. Each off and reboot is confirmed by
# the service's own state file afterwards.
#
#   bash bench/redfish.sh [RUNS]       (default 10 runs per tool and operation)
#
# Prints the median wall time, the HTTP requests each needed (the service's request
# log) and the peak resident memory. Needs: python3, openssl, curl, fence-agents,
# time, cargo. Passwords go on stdin (and in a mode-600 file for the service).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
RUNS=${1:-10}

for tool in python3 openssl curl fence_redfish /usr/bin/time cargo; do
    if ! command -v "$tool" > /dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        echo "bench/redfish.sh: $tool is not installed" >&2
        exit 1
    fi
done
PATH=$PATH:/usr/sbin

if [ -n "${STONITH_BRIDGE:-}" ]; then
    OURS=$STONITH_BRIDGE
else
    echo "building stonith-bridge (release)..." >&2
    cargo build --quiet --release -p stonith-bridge
    OURS=${CARGO_TARGET_DIR:-target}/release/stonith-bridge
fi

WORK=$(mktemp -d)
SERVICE_PID=
cleanup() {
    if [ -n "$SERVICE_PID" ]; then
        kill "$SERVICE_PID" 2> /dev/null || true
        wait "$SERVICE_PID" 2> /dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

USER_NAME=bench
PASSWORD=bench-redfish-pw
printf '%s' "$PASSWORD" > "$WORK/password"
chmod 600 "$WORK/password"
san="subjectAltName=IP:127.0.0.1,DNS:localhost"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2> /dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2> /dev/null
echo "$san" > "$WORK/ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext" -out "$WORK/server.pem" 2> /dev/null

SYSTEM=System.Embedded.1
for attempt in 1 2 3 4 5; do
    PORT=$((20000 + RANDOM % 20000))
    : > "$WORK/service.log"
    python3 tests/src/redfish_responder.py --port "$PORT" --user "$USER_NAME" \
        --password-file "$WORK/password" --cert "$WORK/server.pem" --key "$WORK/server.key" \
        --state "$WORK/state.json" --requests "$WORK/requests.log" --systems "$SYSTEM" \
        > "$WORK/service.log" 2>&1 &
    SERVICE_PID=$!
    for _ in $(seq 50); do
        grep -q ready "$WORK/service.log" && break
        kill -0 "$SERVICE_PID" 2> /dev/null || break
        sleep 0.1
    done
    grep -q ready "$WORK/service.log" && break
    SERVICE_PID=
    [ "$attempt" = 5 ] && { echo "the Redfish responder did not start" >&2; exit 1; }
done

curl_service() { # METHOD PATH [BODY]
    {
        printf 'user = "%s:%s"\ncacert = "%s"\nurl = "https://127.0.0.1:%s%s"\n' \
            "$USER_NAME" "$PASSWORD" "$WORK/ca.pem" "$PORT" "$2"
        printf 'request = "%s"\n' "$1"
        [ -n "${3:-}" ] && printf 'data = "%s"\nheader = "Content-Type: application/json"\n' "${3//\"/\\\"}"
    } | curl -sS --fail --max-time 10 -K - > /dev/null
}
power_state() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/state.json" "$SYSTEM"; }
prepare() { # every operation starts from a system that is on
    curl_service POST "/redfish/v1/Systems/$SYSTEM/Actions/ComputerSystem.Reset" '{"ResetType": "On"}'
    [ "$(power_state)" = On ] || { echo "cannot switch the system on" >&2; exit 1; }
}

input() { # OP
    printf 'action=%s\nip=127.0.0.1\nipport=%s\nusername=%s\npassword=%s\n' \
        "$1" "$PORT" "$USER_NAME" "$PASSWORD"
}
command_for() { # TOOL OP: its stdin goes to $WORK/in
    case "$1" in
    fencekit) { input "$2"; echo "ssl_ca_file=$WORK/ca.pem"; } > "$WORK/in"; echo "$OURS fence-agent redfish" ;;
    fence_redfish) input "$2" > "$WORK/in"; echo "fence_redfish" ;;
    esac
}
export REQUESTS_CA_BUNDLE=$WORK/ca.pem

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
declare -A MS REQS RSS
TOOLS=(fencekit fence_redfish)
OPS=(status off reboot)
for tool in "${TOOLS[@]}"; do
    for op in "${OPS[@]}"; do
        cmd=$(command_for "$tool" "$op")
        times=()
        peak=0
        for _ in $(seq 1 "$RUNS"); do
            prepare
            : > "$WORK/requests.log"
            start=$(date +%s%N)
            # shellcheck disable=SC2086
            /usr/bin/time -f %M -o "$WORK/rss" $cmd < "$WORK/in" > "$WORK/out" 2>&1 || {
                echo "$tool $op failed: $(head -c 400 "$WORK/out")" >&2
                exit 1
            }
            end=$(date +%s%N)
            times+=($(((end - start) / 1000)))
            rss=$(tail -1 "$WORK/rss")
            [ "$rss" -gt "$peak" ] && peak=$rss
            case "$op" in
            off) [ "$(power_state)" = Off ] || { echo "$tool off: the system is not off" >&2; exit 1; } ;;
            reboot) grep -q '"ResetType": *"ForceOff"\|"ResetType":"ForceOff"' "$WORK/requests.log" ||
                { echo "$tool reboot: no ForceOff" >&2; exit 1; } ;;
            esac
        done
        MS[$tool:$op]=$(printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1/1000}')
        RSS[$tool:$op]=$(awk -v k="$peak" 'BEGIN {printf "%.1f", k/1024}')
        REQS[$tool:$op]=$(wc -l < "$WORK/requests.log")
    done
done

echo
echo "Redfish against one service on 127.0.0.1:$PORT (HTTPS, certificate verified by both), median of $RUNS runs, $(date -u +%Y-%m-%d), $(nproc) cores"
echo "off and reboot: both confirm by reading PowerState; the service switches at once"
printf '\n%-14s %-7s %10s %10s %12s\n' tool op "median ms" requests "peak RSS MB"
for tool in "${TOOLS[@]}"; do
    for op in "${OPS[@]}"; do
        printf '%-14s %-7s %10s %10s %12s\n' "$tool" "$op" "${MS[$tool:$op]}" \
            "${REQS[$tool:$op]}" "${RSS[$tool:$op]}"
        bench_record "$tool" "$op" "${MS[$tool:$op]}"
    done
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
for op in "${OPS[@]}"; do
    echo "fence_redfish / fencekit, $op: time x$(ratio "${MS[fence_redfish:$op]}" "${MS[fencekit:$op]}"), requests x$(ratio "${REQS[fence_redfish:$op]}" "${REQS[fencekit:$op]}")"
done
