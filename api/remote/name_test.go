package remote

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanName(t *testing.T) {
	cases := map[string]string{
		"file.zip":                    "file.zip",
		"../../etc/passwd":            ".._.._etc_passwd",
		`..\..\windows\win.ini`:       ".._.._windows_win.ini",
		"a/b\\c":                      "a_b_c",
		"/":                           "_",
		"a\x00b":                      "ab",
		"a\tb\nc\rd\x7fe\u0085f":      "abcdef",
		"  spaced name.txt \t":        "spaced name.txt",
		".":                           "",
		"..":                          "",
		" .. ":                        "",
		"...":                         "...",
		"":                            "",
		"\x00":                        "",
		"bad\xffutf8":                 "bad\uFFFDutf8",
		"evil\u202etxt.exe":           "eviltxt.exe",
		"na\u00efve \u65e5\u672c.txt": "na\u00efve \u65e5\u672c.txt",
	}
	for in, want := range cases {
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}

	long := strings.Repeat("\u00e9", 300) // 600 bytes
	got := cleanName(long)
	if len(got) > maxName || !utf8.ValidString(got) || got != strings.Repeat("\u00e9", 127) {
		t.Errorf("cleanName(300 × é) = %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
	got = cleanName(strings.Repeat("a", 1000))
	if got != strings.Repeat("a", 255) {
		t.Errorf("cleanName(1000 × a) = %d bytes, want 255", len(got))
	}
}

func TestFileName(t *testing.T) {
	cases := []struct{ disp, url, want string }{
		{"", "http://h/a/b/file.zip", "file.zip"},
		{"", "http://h/a/b/file%20name.zip?x=1&y=/z#frag", "file name.zip"},
		{"", "http://h/na%C3%AFve.txt", "na\u00efve.txt"},
		{"", "http://h/a%2Fb", "a_b"},
		{"", "http://h/..%2F..%2Fetc%2Fpasswd", ".._.._etc_passwd"},
		{"", "http://h/a%00b", "ab"},
		{"", "http://h/%2e%2e", ""},
		{"", "http://h/dir/", ""},
		{"", "http://h/", ""},
		{"", "http://h", ""},
		{`attachment; filename="plain.txt"`, "http://h/x", "plain.txt"},
		{`attachment; filename=token.bin`, "http://h/x", "token.bin"},
		{`inline; FILENAME="Upper.txt"`, "http://h/x", "Upper.txt"},
		{`attachment; filename="fallback.txt"; filename*=UTF-8''na%C3%AFve%20file.txt`, "http://h/x", "na\u00efve file.txt"},
		{`attachment; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt; filename="fallback.txt"`, "http://h/x", "\u65e5\u672c.txt"},
		{`attachment; filename="../../etc/passwd"`, "http://h/x", ".._.._etc_passwd"},
		{`attachment; filename="a\\b.txt"`, "http://h/x", "a_b.txt"},
		{`attachment; filename=my file.zip`, "http://h/x", "my file.zip"},
		{`attachment; filename="my file.zip"; size=12 junk`, "http://h/x", "my file.zip"},
		{`attachment; filename=".."`, "http://h/from-url.bin", "from-url.bin"},
		{`attachment`, "http://h/from-url.bin", "from-url.bin"},
		{`garbage;;;`, "http://h/from-url.bin", "from-url.bin"},
	}
	for _, c := range cases {
		u, err := url.Parse(c.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := fileName(c.disp, u); got != c.want {
			t.Errorf("fileName(%q, %q) = %q, want %q", c.disp, c.url, got, c.want)
		}
	}
	if got := fileName("", nil); got != "" {
		t.Errorf("fileName with nil URL = %q", got)
	}
}
