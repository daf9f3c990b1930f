package notify

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// FuzzUnmarshal: arbitrary datagrams never panic, and nothing without the
// right key is ever accepted.
func FuzzUnmarshal(f *testing.F) {
	mac, _ := net.ParseMAC("52:54:00:00:00:10")
	now := time.Unix(1_800_000_000, 0)
	good, _ := Marshal(Message{TenantID: 1, Seq: 9, Origin: netip.MustParseAddr("192.0.2.12"),
		Addr: netip.MustParseAddr("10.10.0.10"), MAC: mac, Sent: now}, key)
	f.Add(good)
	f.Add(good[:20])
	f.Add([]byte("RMN1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b, []byte("some-other-key-0123"), now)
		if err == nil {
			t.Fatalf("accepted with a key it was not signed with: %+v", m)
		}
		_, _ = Unmarshal(b, key, now)
	})
}
