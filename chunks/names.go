package chunks

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CleanName makes a client-supplied file name safe to store and show: the
// last path element, without control characters or the bidirectional
// controls that make a name read otherwise than it is ("\u202eexe.txt"
// shown as "txt.exe"), at most 255 bytes.
func CleanName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base("/" + name)
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || bidi(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, "\uFFFD"))
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	name = strings.TrimSpace(name)
	if name == "/" || name == "." || name == ".." {
		name = ""
	}
	return name
}

// bidi reports whether r is a bidirectional formatting character: the
// embeddings and overrides U+202A–U+202E, the isolates U+2066–U+2069, the
// marks U+200E, U+200F and U+061C.
func bidi(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 ||
		r == 0x200E || r == 0x200F || r == 0x061C
}

// Extension returns the file name extension, with its dot, for a type
// http.DetectContentType reports, or "" when there is none worth giving.
func Extension(contentType string) string {
	t, _, _ := strings.Cut(contentType, ";")
	switch strings.TrimSpace(t) {
	case "application/ogg":
		return ".ogg"
	case "application/pdf":
		return ".pdf"
	case "application/postscript":
		return ".ps"
	case "application/vnd.ms-fontobject":
		return ".eot"
	case "application/wasm":
		return ".wasm"
	case "application/x-gzip":
		return ".gz"
	case "application/x-rar-compressed":
		return ".rar"
	case "application/zip":
		return ".zip"
	case "application/x-7z-compressed":
		return ".7z"
	case "audio/aiff":
		return ".aiff"
	case "audio/basic":
		return ".au"
	case "audio/midi":
		return ".mid"
	case "audio/mpeg":
		return ".mp3"
	case "audio/wave":
		return ".wav"
	case "font/collection":
		return ".ttc"
	case "font/otf":
		return ".otf"
	case "font/ttf":
		return ".ttf"
	case "font/woff":
		return ".woff"
	case "font/woff2":
		return ".woff2"
	case "image/bmp":
		return ".bmp"
	case "image/gif":
		return ".gif"
	case "image/jpeg":
		return ".jpg"
	case "image/svg+xml":
		return ".svg"
	case "image/png":
		return ".png"
	case "image/webp":
		return ".webp"
	case "image/x-icon":
		return ".ico"
	case "text/html":
		return ".html"
	case "text/plain":
		return ".txt"
	case "text/xml":
		return ".xml"
	case "video/avi":
		return ".avi"
	case "video/mp4":
		return ".mp4"
	case "video/webm":
		return ".webm"
	}
	return ""
}
