#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/system-packages (needs root).
# Package scripts are kept from starting system services (sshd, snmpd, corosync):
# the tests start their own, on their own ports, and stop them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    created=1
fi
cleanup() { if [ "$created" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get update
# shellcheck disable=SC2046
apt-get install -y $(grep -v '^#' "$here/system-packages")
