package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/acestash/acestash/store/redisstore/redistest"
)

// TestBackupRestore backs up a server's store with `acestash backup`
// while a client uploads, downloads and deletes, restores the backup into
// an empty store with `acestash restore`, serves it and rebuilds every
// mirror: each file that existed when the backup began downloads
// identical, and each deleted one stays deleted. Once with the embedded
// store (its file, copied hot) and once with Redis (a dump of its
// records).
func TestBackupRestore(t *testing.T) {
	for _, kind := range []string{"embedded", "redis"} {
		t.Run(kind, func(t *testing.T) {
			cfg := testConfig(t, embedded)
			cfg.AdminToken = testAdminToken
			cfg.Accounts[0].Mirrors, cfg.Accounts[0].DefaultMirrors, cfg.Accounts[0].MaxMirrors = nil, nil, 0
			if kind == "redis" {
				cfg.RedisURL = redistest.Start(t).URL
			}
			srv := start(t, cfg, nil)
			var files []*stored
			for i := range 30 {
				f := &stored{data: testData(i*7001%300000, byte(i))}
				f.slug = putFile(t, srv, f.data, "", 0, "1", "2")
				files = append(files, f)
			}
			loop := &loopClient{base: srv.URL}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() { loop.run(t, stop) })
			for { // the client is well under way
				loop.mu.Lock()
				n := len(loop.done)
				loop.mu.Unlock()
				if n >= 5 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			loop.mu.Lock()
			files = append(files, loop.done...) // these are in the backup
			loop.mu.Unlock()
			path := filepath.Join(t.TempDir(), "acestash.backup")
			out, err := cli(t, srv.URL, "backup", path)
			close(stop)
			wg.Wait()
			if err != nil || !strings.Contains(out, "backup: wrote "+path) {
				t.Fatalf("acestash backup: %v\n%s", err, out)
			}
			srv.stop()

			restored := cfg
			restored.DataDir, restored.Listen, restored.PublicURL = t.TempDir(), "", ""
			if kind == "redis" {
				restored.RedisURL = redistest.Start(t).URL
			}
			b, err := yaml.Marshal(restored)
			if err != nil {
				t.Fatal(err)
			}
			cfgPath := filepath.Join(t.TempDir(), "acestash.yml")
			if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
				t.Fatal(err)
			}
			var res bytes.Buffer
			if err := run([]string{"restore", path, "--config", cfgPath}, &res, os.Stderr); err != nil {
				t.Fatalf("acestash restore: %v\n%s", err, res.String())
			}
			var c compared
			if err := json.Unmarshal(res.Bytes(), &c); err != nil || !c.Identical || c.To.Files < len(files) || c.To.Accounts != 2 {
				t.Fatalf("restore compared %s (%v); want identical, at least %d files", res.String(), err, len(files))
			}
			if err := run([]string{"restore", path, "--config", cfgPath}, &res, os.Stderr); err == nil ||
				!strings.Contains(err.Error(), "already holds records") {
				t.Fatalf("restore into a store that holds records: %v", err)
			}

			srv = start(t, restored, nil)
			for _, id := range []string{"1", "2", "3"} {
				if out, err := cli(t, srv.URL, "mirrors", "rebuild", id, "--wait"); err != nil {
					t.Fatalf("mirrors rebuild %s: %v\n%s", id, err, out)
				}
			}
			for _, f := range files {
				resp, body := fetch(t, srv.URL+"/m/"+f.slug+"/download", nil)
				switch {
				case f.deleted && resp.StatusCode == 200:
					t.Errorf("file %s, deleted before the backup, downloads after the restore", f.slug)
				case !f.deleted && (resp.StatusCode != 200 || !bytes.Equal(body, f.data)):
					t.Errorf("file %s after the restore: %s, %d bytes; want its %d bytes", f.slug, resp.Status, len(body), len(f.data))
				}
			}
		})
	}
}
