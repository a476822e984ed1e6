package chunks

import "testing"

func TestParseRangeDialects(t *testing.T) {
	for h, want := range map[string]Range{
		"bytes 0-99/250":    {0, 99, 250},    // PHP: inclusive end
		"bytes 100-200/250": {100, 200, 250}, // .NET: exclusive end
		"bytes 200-250/250": {200, 250, 250}, // .NET's last chunk ends at the total
		"bytes0-99/250":     {0, 99, 250},    // mirror_up: no space
		"bytes=0-99/250":    {0, 99, 250},
		"bytes 21-20/21":    {21, 20, 21}, // PHP's extra empty request
		" Bytes 5-9/10 ":    {5, 9, 10},
		"bytes 0-0/0":       {0, 0, 0},
	} {
		got, err := ParseRange(h)
		if err != nil {
			t.Errorf("ParseRange(%q): %v", h, err)
			continue
		}
		if got != want {
			t.Errorf("ParseRange(%q) = %+v, want %+v", h, got, want)
		}
	}
}

func TestParseRangeRefuses(t *testing.T) {
	for _, h := range []string{
		"", "bytes", "items 0-9/10", "bytes 0-9", "bytes 0/10", "bytes a-9/10",
		"bytes -1-9/10", "bytes 0-9/*", "bytes 0--9/10", "bytes 0-9/+10",
		"bytes 0-11/10", // end past the total
		"bytes 0-99999999999999999999/1",
	} {
		_, err := ParseRange(h)
		e, ok := AsError(err)
		if !ok || e.Kind != Invalid {
			t.Errorf("ParseRange(%q) = %v, want an Invalid error", h, err)
		}
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":            "report.pdf",
		"../../etc/passwd":      "passwd",
		`C:\Users\me\photo.jpg`: "photo.jpg",
		"a\x00b\r\nc.txt":       "abc.txt",
		"..":                    "",
		"/":                     "",
		"  spaced name.txt  ":   "spaced name.txt",
		"bad\xffutf8.bin":       "bad\uFFFDutf8.bin",
		"Space Man Jelly.jpg":   "Space Man Jelly.jpg",
		// Bidirectional controls would show "\u202eexe.txt" as "txt.exe".
		"\u202eexe.txt":                    "exe.txt",
		"a\u202a\u202b\u202c\u202d\u202eb": "ab",
		"x\u2066\u2067\u2068\u2069y":       "xy",
		"\u200eleft\u200f\u061cright":      "leftright",
		"שלום.txt":                         "שלום.txt", // right-to-left letters stay
	} {
		if got := CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
	long := CleanName(string(make([]rune, 300)) + "é")
	if len(long) > 255 {
		t.Errorf("CleanName kept %d bytes", len(long))
	}
}
