package remote

import (
	"net/netip"
	"testing"
)

// FuzzLiteral: whatever a host name spells, if it is read as an address,
// an address the standard library calls loopback, private, link-local,
// multicast or unspecified is refused; and a dotted quad reads as the
// standard parser reads it.
func FuzzLiteral(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "0x7f.1", "2130706433", "017700000001", "127.1", "10.0.0.1.",
		"::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "fe80::1%eth0", "169.254.169.254",
		"0", "0x", "1.2.3.4.5", "93.184.216.34", "[::1]", "localhost"} {
		f.Add(s)
	}
	var p Policy
	f.Fuzz(func(t *testing.T, host string) {
		a, ok := literal(host)
		if !ok {
			return
		}
		if std, err := netip.ParseAddr(host); err == nil && std != a {
			t.Fatalf("literal(%q) = %v, the standard parser says %v", host, a, std)
		}
		u := a.WithZone("").Unmap()
		if (u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() || u.IsLinkLocalMulticast() ||
			u.IsMulticast() || u.IsUnspecified() || u.IsInterfaceLocalMulticast()) && p.Check(a) == nil {
			t.Fatalf("literal(%q) = %v, which Check lets through", host, a)
		}
	})
}
