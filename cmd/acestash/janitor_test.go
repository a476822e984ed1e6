package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSpoolCleanedAtStart leaves what a killed node parked in its spool:
// the next start removes it.
func TestSpoolCleanedAtStart(t *testing.T) {
	cfg := testConfig(t, embedded)
	spool := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"body-123", "body-456"} {
		if err := os.WriteFile(filepath.Join(spool, name), make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start(t, cfg, nil)
	left, err := os.ReadDir(spool)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("the spool still holds %d entries after the start", len(left))
	}
}
