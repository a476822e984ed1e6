package remote

import (
	"errors"
	"net/netip"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	deny := []struct{ addr, why string }{
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"10.0.0.1", "private"},
		{"10.1.2.3", "private"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.254", "carrier-grade NAT"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"169.254.169.254", "link-local"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.0.0.8", "reserved"},
		{"192.0.2.1", "documentation"},
		{"192.168.1.1", "private"},
		{"198.18.0.1", "benchmark"},
		{"198.19.255.255", "benchmark"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"::7f00:1", "IPv4-compatible"},
		{"::ffff:10.0.0.1", "IPv4-mapped private"},
		{"::ffff:127.0.0.1", "IPv4-mapped loopback"},
		{"::ffff:169.254.169.254", "IPv4-mapped link-local"},
		{"::ffff:0.0.0.0", "IPv4-mapped unspecified"},
		{"64:ff9b::7f00:1", "NAT64 loopback"},
		{"64:ff9b::a9fe:a9fe", "NAT64 link-local"},
		{"64:ff9b:1::1", "reserved"},
		{"2002:7f00:1::1", "6to4 loopback"},
		{"2002:a00:1::", "6to4 private"},
		{"100::1", "reserved"},
		{"2001::1", "Teredo"},
		{"2001:2::1", "benchmark"},
		{"2001:db8::1", "documentation"},
		{"2001:10::1", "reserved"},
		{"3fff::1", "documentation"},
		{"fc00::1", "unique-local"},
		{"fd00::1", "unique-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"ff0e::1", "multicast"},
		{"::ffff:0:a00:1", "reserved"}, // IPv4-translated
		{"4000::1", "reserved"},        // outside 2000::/3
		{"5f00::1", "reserved"},
	}
	var p Policy
	for _, c := range deny {
		a := netip.MustParseAddr(c.addr)
		err := p.Check(a)
		if !errors.Is(err, ErrDenied) {
			t.Errorf("Check(%s) = %v, want ErrDenied", c.addr, err)
			continue
		}
		var de *DeniedError
		if !errors.As(err, &de) {
			t.Errorf("Check(%s) = %T, want *DeniedError", c.addr, err)
			continue
		}
		if de.Reason != c.why || de.Addr != a {
			t.Errorf("Check(%s) = {%s, %q}, want {%s, %q}", c.addr, de.Addr, de.Reason, a, c.why)
		}
	}

	allow := []string{
		"93.184.216.34",
		"1.1.1.1",
		"8.8.8.8",
		"172.15.255.255",
		"172.32.0.1",
		"100.63.255.255",
		"100.128.0.1",
		"192.169.0.1",
		"223.255.255.255",
		"::ffff:93.184.216.34",
		"2606:2800:220:1::1",
		"2a00:1450:4001:81a::200e",
		"64:ff9b::5db8:d822", // NAT64 of 93.184.216.34
		"2002:5db8:d822::1",  // 6to4 of 93.184.216.34
	}
	for _, s := range allow {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("Check(%s) = %v, want nil", s, err)
		}
	}

	if err := p.Check(netip.Addr{}); !errors.Is(err, ErrDenied) {
		t.Errorf("Check(zero Addr) = %v, want ErrDenied", err)
	}
}

func TestPolicyAllow(t *testing.T) {
	p := Policy{Allow: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/16"),
	}}
	for _, s := range []string{"127.0.0.1", "::ffff:127.0.0.1", "10.1.2.3", "::ffff:10.9.9.9", "fd00::1", "93.184.216.34"} {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("Check(%s) = %v, want nil", s, err)
		}
	}
	for _, s := range []string{"127.0.0.2", "::1", "192.168.0.1", "fd01::1", "169.254.169.254"} {
		if err := p.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrDenied) {
			t.Errorf("Check(%s) = %v, want ErrDenied", s, err)
		}
	}
}

func TestDeniedErrorMessage(t *testing.T) {
	err := Policy{}.Check(netip.MustParseAddr("169.254.169.254"))
	if got, want := err.Error(), "remote: address 169.254.169.254 denied: link-local"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = withHost(err, "metadata.example")
	if got, want := err.Error(), `remote: address 169.254.169.254 of host "metadata.example" denied: link-local`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseLegacy4(t *testing.T) {
	ok := map[string]string{
		"0x7f.1":          "127.0.0.1",
		"0X7F.1":          "127.0.0.1",
		"2130706433":      "127.0.0.1",
		"017700000001":    "127.0.0.1",
		"0x7f000001":      "127.0.0.1",
		"127.1":           "127.0.0.1",
		"127.0.1":         "127.0.0.1",
		"0177.0.0.1":      "127.0.0.1",
		"127.000.000.001": "127.0.0.1",
		"127.0.0.1.":      "127.0.0.1",
		"0":               "0.0.0.0",
		"0x":              "0.0.0.0",
		"10.0x10203":      "10.1.2.3",
		"169.254.43518":   "169.254.169.254",
		"0xa9fea9fe":      "169.254.169.254",
		"1.2.3":           "1.2.0.3",
		"4294967295":      "255.255.255.255",
	}
	for s, want := range ok {
		a, good := parseLegacy4(s)
		if !good || a != netip.MustParseAddr(want) {
			t.Errorf("parseLegacy4(%q) = %v, %v; want %s", s, a, good, want)
		}
	}
	for _, s := range []string{
		"", ".", "example.com", "localhost", "1.2.3.4.5", "256.1.1.1", "1.256.1.1",
		"1.2.65536", "4294967296", "08", "1..2", "0x1g", "1.2.3.-4", "12a", "example.123", "1.2.3.4..",
	} {
		if a, good := parseLegacy4(s); good {
			t.Errorf("parseLegacy4(%q) = %v, want failure", s, a)
		}
	}
}
