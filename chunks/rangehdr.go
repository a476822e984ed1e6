package chunks

import (
	"strconv"
	"strings"
)

// Range is a parsed Content-Range header of a chunk request.
type Range struct {
	Start, End, Total int64
}

// ParseRange reads a Content-Range header as the MirrorAce clients write it:
// "bytes", then an optional space or "=", then "start-end/total". End may be
// inclusive or exclusive and may even lie before Start (an empty chunk, or a
// client whose offsets drift); only the numbers' form and End <= Total are
// checked here.
func ParseRange(h string) (Range, error) {
	bad := func(why string) (Range, error) {
		return Range{}, Errorf(Invalid, "malformed Content-Range %q: %s; expected \"bytes START-END/TOTAL\"", h, why)
	}
	s := strings.TrimSpace(h)
	if len(s) < 5 || !strings.EqualFold(s[:5], "bytes") {
		return bad("it must start with \"bytes\"")
	}
	s = s[5:]
	if s != "" && (s[0] == ' ' || s[0] == '=') {
		s = s[1:]
	}
	span, total, ok := strings.Cut(s, "/")
	if !ok {
		return bad("no \"/TOTAL\"")
	}
	start, end, ok := strings.Cut(span, "-")
	if !ok {
		return bad("no \"START-END\"")
	}
	var r Range
	var err error
	if r.Start, err = number(start); err != nil {
		return bad("start is not a number")
	}
	if r.End, err = number(end); err != nil {
		return bad("end is not a number")
	}
	if r.Total, err = number(total); err != nil {
		return bad("total is not a number")
	}
	if r.End > r.Total {
		return Range{}, Errorf(Invalid, "inconsistent Content-Range %q: end %d is past the total %d", h, r.End, r.Total)
	}
	return r, nil
}

// number parses a non-negative decimal with no sign or spaces.
func number(s string) (int64, error) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(s, 10, 64)
}
