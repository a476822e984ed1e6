package remote

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrDenied is wrapped by every error that refuses an address because of
// the Policy; a *DeniedError unwraps to it.
var ErrDenied = errors.New("address not allowed")

// DeniedError reports an address the Policy refuses.
type DeniedError struct {
	Host   string     // the host name that resolved to Addr; "" when Addr was given directly
	Addr   netip.Addr // the refused address, as given or resolved
	Reason string     // why, e.g. "loopback", "private", "IPv4-mapped link-local"
}

func (e *DeniedError) Error() string {
	if e.Host != "" && e.Host != e.Addr.String() {
		return fmt.Sprintf("remote: address %s of host %q denied: %s", e.Addr, e.Host, e.Reason)
	}
	return fmt.Sprintf("remote: address %s denied: %s", e.Addr, e.Reason)
}

// Unwrap returns ErrDenied.
func (e *DeniedError) Unwrap() error { return ErrDenied }

// Policy decides which addresses may be dialled. The zero Policy allows
// only public unicast addresses.
type Policy struct {
	// Allow lists ranges permitted even though they are otherwise denied
	// (the operator's remote.allow_cidrs). It is checked first, against the
	// address with any IPv4-mapping removed.
	Allow []netip.Prefix
}

// Check returns nil if addr may be dialled, and otherwise a *DeniedError
// naming the address and why it is refused. An IPv4-mapped IPv6 address
// (::ffff:127.0.0.1) is judged as the IPv4 address it maps, and NAT64 and
// 6to4 addresses are denied when the IPv4 address they embed is. Check does
// no I/O.
func (p Policy) Check(addr netip.Addr) error {
	if !addr.IsValid() {
		return &DeniedError{Addr: addr, Reason: "invalid"}
	}
	a := addr.WithZone("") // Prefix.Contains never matches a zoned address
	mapped := a.Is4In6()
	a = a.Unmap()
	for _, pre := range p.Allow {
		if pre.Contains(a) || (mapped && pre.Contains(addr.WithZone(""))) {
			return nil
		}
	}
	why := reason(a)
	if why == "" {
		return nil
	}
	if mapped {
		why = "IPv4-mapped " + why
	}
	return &DeniedError{Addr: addr, Reason: why}
}

// rule is one denied range.
type rule struct {
	pre netip.Prefix
	why string
}

// deniedRanges returns the ranges no fetch may reach, more specific ranges
// before the ranges that contain them.
func deniedRanges() []rule {
	r := func(s, why string) rule { return rule{netip.MustParsePrefix(s), why} }
	return []rule{
		// IPv4.
		r("0.0.0.0/8", "unspecified"),
		r("10.0.0.0/8", "private"),
		r("100.64.0.0/10", "carrier-grade NAT"),
		r("127.0.0.0/8", "loopback"),
		r("169.254.0.0/16", "link-local"),
		r("172.16.0.0/12", "private"),
		r("192.0.0.0/24", "reserved"),
		r("192.0.2.0/24", "documentation"),
		r("192.88.99.0/24", "reserved"),
		r("192.168.0.0/16", "private"),
		r("198.18.0.0/15", "benchmark"),
		r("198.51.100.0/24", "documentation"),
		r("203.0.113.0/24", "documentation"),
		r("224.0.0.0/4", "multicast"),
		r("255.255.255.255/32", "broadcast"),
		r("240.0.0.0/4", "reserved"),

		// IPv6. Anything outside 2000::/3 is also denied, below.
		r("::/128", "unspecified"),
		r("::1/128", "loopback"),
		r("::/96", "IPv4-compatible"),
		r("64:ff9b:1::/48", "reserved"),
		r("100::/64", "reserved"),
		r("2001::/32", "Teredo"),
		r("2001:2::/48", "benchmark"),
		r("2001:db8::/32", "documentation"),
		r("2001::/23", "reserved"),
		r("3fff::/20", "documentation"),
		r("fc00::/7", "unique-local"),
		r("fe80::/10", "link-local"),
		r("fec0::/10", "site-local"),
		r("ff00::/8", "multicast"),
	}
}

// reason returns why the unmapped, unzoned address a is denied, or "".
func reason(a netip.Addr) string {
	for _, r := range deniedRanges() {
		if r.pre.Contains(a) {
			return r.why
		}
	}
	if !a.Is6() {
		return ""
	}
	if v4, kind, ok := embedded4(a); ok {
		if why := reason(v4); why != "" {
			return kind + " " + why
		}
		return ""
	}
	if !netip.MustParsePrefix("2000::/3").Contains(a) {
		return "reserved"
	}
	return ""
}

// embedded4 returns the IPv4 address a NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) address carries, and which form it is.
func embedded4(a netip.Addr) (netip.Addr, string, bool) {
	b := a.As16()
	switch {
	case netip.MustParsePrefix("64:ff9b::/96").Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), "NAT64", true
	case netip.MustParsePrefix("2002::/16").Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), "6to4", true
	}
	return netip.Addr{}, "", false
}

// parseLegacy4 parses s as an IPv4 address the way the C library's
// inet_aton does, which getaddrinfo may apply to a host name: one to four
// dot-separated numbers, each decimal, octal (leading 0) or hexadecimal
// (leading 0x), the last filling all remaining bytes. So "0x7f.1",
// "2130706433", "017700000001" and "127.1" all mean 127.0.0.1. A single
// trailing dot is ignored. It reports false if s is not such a number.
func parseLegacy4(s string) (netip.Addr, bool) {
	s = strings.TrimSuffix(s, ".")
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v [4]uint64
	for i, p := range parts {
		n, ok := parseAtonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		v[i] = n
	}
	last := len(parts) - 1
	for i := range last {
		if v[i] > 0xff {
			return netip.Addr{}, false
		}
	}
	if v[last] >= 1<<(8*(4-last)) {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i := range last {
		b[i] = byte(v[i])
	}
	for i := 3; i >= last; i-- {
		b[i] = byte(v[last])
		v[last] >>= 8
	}
	return netip.AddrFrom4(b), true
}

// parseAtonPart parses one inet_aton number. Values above 32 bits fail.
func parseAtonPart(p string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(p) >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'):
		base, p = 16, p[2:] // "0x" alone is 0, as in inet_aton
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	case p == "":
		return 0, false
	}
	var n uint64
	for i := 0; i < len(p); i++ {
		var d uint64
		switch c := p[i]; {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		n = n*base + d
		if n > 0xffffffff {
			return 0, false
		}
	}
	return n, true
}
