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
# On a fresh Debian 12 it installs what it needs first (FRR, iproute2,
# traceroute, ping, tcpdump; Go if none is found). Safe to re-run: nothing is
# installed twice and leftovers of an interrupted run are removed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "labs/demo.sh: run as root (the lab creates network namespaces): sudo bash labs/demo.sh" >&2
	exit 1
fi

# Debian packages the lab uses.
packages=(frr iproute2 iputils-ping traceroute tcpdump procps ca-certificates)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}..."
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go: on PATH or in /usr/local/go. Go 1.21 or later fetches the toolchain
# go.mod asks for by itself; older or none: install one.
go_usable() {
	local v
	v=$("$1" env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	[ "$(printf '%s\n%s\n' 1.21 "$v" | sort -V | head -n1)" = 1.21 ]
}
gobin=""
for g in "$(command -v go || true)" /usr/local/go/bin/go; do
	if [ -n "$g" ] && [ -x "$g" ] && go_usable "$g"; then gobin=$g; break; fi
done
if [ -z "$gobin" ]; then
	if [ -r labs/setup.sh ]; then
		# The project's installer fetches a recent Go from the Go module proxy.
		. labs/setup.sh
	else
		apt-get install -y -qq --no-install-recommends golang-go >/dev/null
	fi
	gobin=$(command -v go || true)
	if [ -z "$gobin" ] || ! go_usable "$gobin"; then
		echo "labs/demo.sh: no Go 1.21 or later found; install Go (https://go.dev/dl/) into /usr/local/go" >&2
		exit 1
	fi
fi
export PATH="$(dirname "$gobin"):$PATH"

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
echo "building roamlab..."
go build -o "$bin/roamlab" ./labs/cmd/roamlab
# Leftovers of an interrupted earlier run (only runs whose process is gone).
"$bin/roamlab" clean >/dev/null || true
"$bin/roamlab" demo --src . "$@"
