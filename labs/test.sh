#!/usr/bin/env bash
# Runs every test of roamd: unit tests, in-process BGP tests, privileged
# namespace tests and the end-to-end labs (real FRR, real QEMU), then each
# fuzz target for a bounded time. README's second command; CI runs it too.
# Needs root on Debian 12; installs what it needs (labs/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. labs/setup.sh

go vet ./...
go test -count=1 -timeout 30m ./...

# roamd's own concurrency (engine, API, capture, kernel, CLIs) under the
# race detector. routing/bgp is left out: GoBGP v4 itself races when a peer
# restarts gracefully (Path.MarkStale against its event watcher's IsStale).
go test -race -count=1 -timeout 10m ./daemon/... ./detect/... ./routing/fib ./routing/notify ./cmd/...

# Every frame decoder and the config parser, fuzzed for a bounded time.
fuzztime=${ROAMD_FUZZTIME:-15s}
while read -r pkg target; do
	[ -n "$pkg" ] || continue
	echo "fuzzing $target in $pkg for $fuzztime"
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
done <<'TARGETS'
./detect/frames FuzzDecode
./detect/frames FuzzDecodeTraffic
./routing/bgp FuzzDecodeMobility
./routing/fib FuzzParseRoute
./routing/notify FuzzUnmarshal
./daemon/config FuzzParse
TARGETS
