#!/usr/bin/env bash
# roamd's demo: a VM moves between two sites while a client probes it at
# 1 kHz; roamd moves its host route with it. Runs the two-site lab
# (labs/two-site) as network namespaces with real FRR leaves and real roamd
# hypervisors, no Docker needed, prints the cost of each move and removes
# everything again.
#
#   sudo bash labs/demo.sh               # 4 live migrations
#   sudo bash labs/demo.sh --moves 10    # any `roamlab demo` flag passes through
#   sudo bash labs/demo.sh --cold        # HA restarts instead
#
# On a fresh Debian 12 it installs what it needs first (labs/setup.sh: FRR,
# iproute2, traceroute, ...; Go from the Go module proxy if none is found). Safe to re-run: nothing is
# installed twice and leftovers of an interrupted run are removed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "labs/demo.sh: run as root (the lab creates network namespaces): sudo bash labs/demo.sh" >&2
	exit 1
fi

# Debian packages and Go, installed only when missing.
. labs/setup.sh

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "building roamlab..."
go build -o "$bin/roamlab" ./labs/cmd/roamlab
# Leftovers of an interrupted earlier run (only runs whose process is gone).
"$bin/roamlab" clean >/dev/null || true
"$bin/roamlab" demo --src . "$@"
