package reqid

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestHandlerAddsID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, nil))).With("part", "chunks")
	ctx := With(context.Background(), "abc-123")
	log.WarnContext(ctx, "mirror dropped")
	log.Warn("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "request_id=abc-123") || !strings.Contains(lines[0], "part=chunks") {
		t.Fatalf("first line lacks the id or the attribute: %q", lines)
	}
	if strings.Contains(lines[1], "request_id") {
		t.Fatalf("a line without a request names one: %q", lines[1])
	}
}

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"abc-123": true, New(): true, "": false, "a b": false, "x\ny": false,
		strings.Repeat("a", 128): true, strings.Repeat("a", 129): false, "é": false,
	} {
		if Valid(id) != want {
			t.Errorf("Valid(%q) = %v, want %v", id, !want, want)
		}
	}
}
