#!/usr/bin/env bash
# Datagrams per fence (a script, not a test): status, off (accepted and confirmed)
# and reboot, each with core's fence algorithm, against fencekit's test BMC (the
# responder) on loopback over RMCP+ (suite 17; 17 refused then 3) and IPMI 1.5
# (MD5), with the BMC answering at once, after 300 ms and after 700 ms (slower than
# the 0.5 s retransmission interval).
#
#   bench/ipmi-datagrams.sh [RUNS]     (default 3 runs per row; the median is shown)
#
# The count is the BMC's own: datagrams it received plus datagrams it sent for one
# fence, retransmissions and Close Session included.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}

echo "building the datagrams example (release)..." >&2
cargo build --quiet --release --locked -p fencekit-ipmi --example datagrams
DATAGRAMS=${CARGO_TARGET_DIR:-target}/release/examples/datagrams

echo "== fencekit against its test BMC on 127.0.0.1, median of $RUNS runs, $(date -u +%F), $(nproc) cores"
"$DATAGRAMS" "$RUNS"
