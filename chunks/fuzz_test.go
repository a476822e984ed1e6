package chunks

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParseRange: any header either parses into numbers that are not
// negative, with End <= Total, or is refused with an Invalid error.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/250", "bytes=0-99/250", "bytes0-99/250", " Bytes 5-9/10 ",
		"bytes 21-20/21", "bytes 0-9/*", "bytes -1-9/10", "bytes 0-99999999999999999999/1", "", "bytes"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r, err := ParseRange(h)
		if err != nil {
			if e, ok := AsError(err); !ok || e.Kind != Invalid {
				t.Fatalf("ParseRange(%q): %v, not an Invalid error", h, err)
			}
			return
		}
		if r.Start < 0 || r.End < 0 || r.Total < 0 || r.End > r.Total {
			t.Fatalf("ParseRange(%q) = %+v", h, r)
		}
	})
}

// FuzzCleanName: a cleaned name is valid UTF-8, at most 255 bytes, one path
// element without controls or bidirectional formatting, and cleaning it
// again changes nothing.
func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"report.pdf", "../../etc/passwd", `C:\Users\me\photo.jpg`, "a\x00b\r\nc.txt",
		"..", "/", "bad\xffutf8.bin", "\u202eexe.txt", "x\u2066y\u200e", strings.Repeat("é", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := CleanName(in)
		if !utf8.ValidString(got) || len(got) > 255 || strings.ContainsAny(got, "/\\") || got == "." || got == ".." {
			t.Fatalf("CleanName(%q) = %q", in, got)
		}
		for _, r := range got {
			if unicode.IsControl(r) || bidi(r) {
				t.Fatalf("CleanName(%q) = %q keeps %U", in, got, r)
			}
		}
		if again := CleanName(got); again != got {
			t.Fatalf("CleanName(%q) = %q, but cleaned again %q", in, got, again)
		}
	})
}
