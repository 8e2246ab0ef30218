#!/usr/bin/env bash
# Runs every fencekit test. First installs the real peers the tests talk to
# (ipmi_sim, snmpd, sshd, cluster-glue, fence-agents, ...) unless
# FENCEKIT_SKIP_APT=1; then runs the whole workspace's tests with
# FENCEKIT_REQUIRE_PEERS=1, so a missing peer fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${FENCEKIT_SKIP_APT:-0}" != 1 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        bash scripts/install-packages.sh
    else
        sudo bash scripts/install-packages.sh
    fi
fi
export FENCEKIT_REQUIRE_PEERS="${FENCEKIT_REQUIRE_PEERS:-1}"
# The fault matrix runs on its own with its table printed (plugin x action x front
# end x device fault, each cell judged by the simulator's own record).
matrix=every_plugin_action_front_end_and_device_fault_is_judged_by_the_devices_true_state
# The cluster lab runs on its own too, so that its measured times, the most mounts
# of the shared disk at once and the oracle's longest gap between samples are shown.
cluster=a_cluster_fences_through_fencekit_only_what_it_must
cargo test --workspace --locked -- --skip "$matrix" --skip _is_taken_with_its_meaning_or_refused \
    --skip every_cluster_glue_plugin_name --skip "$cluster"
cargo test -p fencekit-tests --test fault_matrix --locked -- --nocapture --exact "$matrix"
# The conformance tables: every parameter of the installed fence_ipmilan,
# fence_apc_snmp and fence_apc, each taken with its meaning or refused, printed.
cargo test -p fencekit-tests --test conformance --locked -- --nocapture --test-threads 1 \
    _is_taken_with_its_meaning_or_refused every_cluster_glue_plugin_name
cargo test -p fencekit-tests --test cluster --locked -- --nocapture "$cluster"
