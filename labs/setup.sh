#!/usr/bin/env bash
# Installs what roamd's labs and tests need on a fresh Debian 12, as root:
# Debian packages (FRR, BIRD, iproute2, QEMU, ...) and Go (the toolchain from
# the Go module proxy when no recent Go is installed). Idempotent: re-running
# installs nothing twice. Source it to get Go on PATH:  . labs/setup.sh
set -euo pipefail

ROAMD_GO_VERSION=${ROAMD_GO_VERSION:-1.26.8}

if [ "$(id -u)" != 0 ]; then
	echo "labs/setup.sh: run as root (the labs create network namespaces)" >&2
	exit 1
fi

roamd_packages=(frr bird2 gobgpd iproute2 iputils-ping iputils-arping traceroute tcpdump socat
	busybox-static qemu-system-x86 xz-utils ca-certificates curl unzip procps kmod)
roamd_missing=()
for p in "${roamd_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || roamd_missing+=("$p")
done
if [ ${#roamd_missing[@]} -gt 0 ]; then
	echo "installing: ${roamd_missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${roamd_missing[@]}" >/dev/null
fi
# The packaged FRR and BIRD services would run in the root namespace; the
# labs start their own instances per namespace and need none there.
for svc in frr bird; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
	fi
done

# Go: use one on PATH or in /usr/local/go if recent enough, else fetch the
# official toolchain zip from the Go module proxy (the same archive
# GOTOOLCHAIN downloads).
roamd_go_ok() {
	local v
	v=$("$1" env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	[ "$(printf '%s\n%s\n' "1.26" "$v" | sort -V | head -n1)" = "1.26" ]
}
roamd_go=""
for g in "$(command -v go || true)" /usr/local/go/bin/go "/usr/local/go-$ROAMD_GO_VERSION/bin/go"; do
	if [ -n "$g" ] && [ -x "$g" ] && roamd_go_ok "$g"; then roamd_go=$g; break; fi
done
if [ -z "$roamd_go" ]; then
	arch=$(dpkg --print-architecture)
	zip="v0.0.1-go${ROAMD_GO_VERSION}.linux-${arch}.zip"
	echo "installing Go $ROAMD_GO_VERSION from the Go module proxy"
	tmp=$(mktemp -d)
	curl -fsSL -o "$tmp/go.zip" "https://proxy.golang.org/golang.org/toolchain/@v/$zip"
	unzip -q "$tmp/go.zip" -d "$tmp"
	rm -rf "/usr/local/go-$ROAMD_GO_VERSION"
	mv "$tmp/golang.org/toolchain@v0.0.1-go${ROAMD_GO_VERSION}.linux-${arch}" "/usr/local/go-$ROAMD_GO_VERSION"
	chmod +x "/usr/local/go-$ROAMD_GO_VERSION"/bin/* "/usr/local/go-$ROAMD_GO_VERSION"/pkg/tool/*/*
	rm -rf "$tmp"
	roamd_go="/usr/local/go-$ROAMD_GO_VERSION/bin/go"
fi
export PATH="$(dirname "$roamd_go"):$PATH"
export GOTOOLCHAIN=local
go version
