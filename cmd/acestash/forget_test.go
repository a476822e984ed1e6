package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestMirrorRemovedFromConfig takes a mirror holding copies out of the
// configuration: the node refuses to start, saying how many files the
// mirror holds and to drain it; after `mirrors forget`, it starts, and the
// repairer writes the copies the forgotten mirror held to another mirror.
func TestMirrorRemovedFromConfig(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Accounts[0].Mirrors, cfg.Accounts[0].DefaultMirrors, cfg.Accounts[0].MaxMirrors = nil, nil, 0
	srv := start(t, cfg, nil)
	var slugs []string
	var data [][]byte
	for i := range 3 {
		d := testData(1000*i+10, byte(i))
		slugs = append(slugs, putFile(t, srv, d, "", 0, "1", "2"))
		data = append(data, d)
	}
	srv.stop()

	without := cfg
	without.Mirrors = []MirrorConfig{cfg.Mirrors[0], cfg.Mirrors[2]}
	if err := without.setDefaults(); err != nil {
		t.Fatal(err)
	}
	_, err := newApp(context.Background(), without, testLog(t), time.Now)
	if err == nil || !strings.Contains(err.Error(), "mirror 2 is not in the configuration, but 3 files") ||
		!strings.Contains(err.Error(), "acestash mirrors drain 2") || !strings.Contains(err.Error(), "acestash mirrors forget 2") {
		t.Fatalf("starting without mirror 2: %v", err)
	}

	b, err := yaml.Marshal(without)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "acestash.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"mirrors", "forget", "2", "--config", path}, &out, os.Stderr); err != nil {
		t.Fatalf("mirrors forget: %v", err)
	}
	if !strings.Contains(out.String(), `"files": 3`) || !strings.Contains(out.String(), `"repaired": 3`) {
		t.Fatalf("mirrors forget printed %s", out.String())
	}

	without.Listen, without.PublicURL = "", ""
	srv = start(t, without, nil)
	if info := fileInfo(t, srv, testKey, testToken, slugs[0]); info["mirrors"] != "1" || info["missing"] != "3" {
		t.Fatalf("file/info after forget: %v; want mirror 1, missing 3", info)
	}
	if n, err := srv.app.chunks.Repair(t.Context()); n != 3 || err != nil {
		t.Fatalf("the repairer made %d copies (%v), want 3", n, err)
	}
	for i, sl := range slugs {
		if info := fileInfo(t, srv, testKey, testToken, sl); info["mirrors"] != "1,3" || info["missing"] != "" {
			t.Fatalf("file %s after the repair: %v; want mirrors 1,3", sl, info)
		}
		f, _ := srv.app.store.File(t.Context(), sl)
		e, _ := srv.app.mirrors.Get("3")
		rc, err := e.Mirror.Open(t.Context(), f.ObjectKey, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		got.ReadFrom(rc)
		rc.Close()
		if !bytes.Equal(got.Bytes(), data[i]) {
			t.Fatalf("mirror 3's copy of %s: %d bytes, not the file", sl, got.Len())
		}
	}
}
