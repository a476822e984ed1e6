package chunks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/store"
)

// Remove deletes a published file: its record first, so no one is sent to a
// copy that is going away, then its object on every mirror that holds it.
func (s *Service) Remove(ctx context.Context, f store.File) error {
	if err := s.cfg.Store.DeleteFile(ctx, f.Slug); err != nil {
		return fmt.Errorf("chunks: delete file %s: %w", f.Slug, err)
	}
	var errs []error
	for _, id := range f.Mirrors {
		e, ok := s.cfg.Mirrors.Get(id)
		if !ok {
			continue
		}
		if err := e.Mirror.Delete(ctx, f.ObjectKey); err != nil && !errors.Is(err, mirrors.ErrNotFound) {
			errs = append(errs, fmt.Errorf("mirror %s: %w", id, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("chunks: file %s: delete object: %w", f.Slug, errors.Join(errs...))
	}
	return nil
}

// Expire removes files whose expiry has passed and returns how many it
// removed.
func (s *Service) Expire(ctx context.Context) (int, error) {
	old, err := s.cfg.Store.ExpiredFiles(ctx, s.cfg.Clock(), 100)
	if err != nil {
		return 0, fmt.Errorf("chunks: list expired files: %w", err)
	}
	n := 0
	for _, f := range old {
		if err := s.Remove(ctx, f); err != nil {
			s.cfg.Log.Warn("remove expired file", "slug", f.Slug, "err", err)
			continue
		}
		n++
	}
	return n, nil
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
