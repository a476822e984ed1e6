package remote

import (
	"mime"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxName is the longest file name, in bytes, that fileName returns.
const maxName = 255

// fileName returns the name a fetched file should be stored under: the
// Content-Disposition filename (filename* preferred over filename), else
// the last path segment of u, else "". The result is always clean (see
// cleanName).
func fileName(disposition string, u *url.URL) string {
	if n := cleanName(dispositionName(disposition)); n != "" {
		return n
	}
	if u == nil {
		return ""
	}
	p := u.EscapedPath()
	seg := p[strings.LastIndexByte(p, '/')+1:]
	if s, err := url.PathUnescape(seg); err == nil {
		seg = s
	}
	return cleanName(seg)
}

// dispositionName returns the filename parameter of a Content-Disposition
// header value, decoding an RFC 5987 filename* when there is one. A header
// that mime.ParseMediaType refuses (unquoted spaces are common) is read
// leniently for a plain filename.
func dispositionName(v string) string {
	if v == "" {
		return ""
	}
	if _, params, err := mime.ParseMediaType(v); err == nil {
		return params["filename"]
	}
	_, rest, ok := cutFold(v, "filename=")
	if !ok {
		return ""
	}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, `"`) {
		rest = rest[1:]
		if i := strings.IndexByte(rest, '"'); i >= 0 {
			rest = rest[:i]
		}
		return rest
	}
	if i := strings.IndexByte(rest, ';'); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// cutFold is strings.Cut with the ASCII sep matched case-insensitively.
func cutFold(s, sep string) (before, after string, found bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sep)], sep) {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

// cleanName makes s safe to use as a stored file name: invalid UTF-8 becomes
// U+FFFD, path separators (/ and \) become "_", control and bidirectional
// formatting characters are dropped, surrounding space is trimmed, "." and
// ".." become "", and the result is cut to at most 255 bytes on a rune
// boundary.
func cleanName(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\':
			return '_'
		case unicode.IsControl(r), isBidi(r):
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxName {
		n := maxName
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = strings.TrimSpace(s[:n])
	}
	if s == "." || s == ".." {
		return ""
	}
	return s
}

// isBidi reports whether r is an invisible bidirectional formatting
// character, which can make "exe.txt" display as "txt.exe".
func isBidi(r rune) bool {
	return r == '\u200e' || r == '\u200f' || r == '\u061c' ||
		('\u202a' <= r && r <= '\u202e') || ('\u2066' <= r && r <= '\u2069')
}
