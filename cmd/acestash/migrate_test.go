package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/acestash/acestash/store/dump"
	"github.com/acestash/acestash/store/redisstore/redistest"
)

// storeView is what clients and the operator see of a store through a
// server: every account's listing, file/info of every file, usage, and a
// digest of every download.
type storeView struct {
	Lists     map[string][]json.RawMessage
	Infos     map[string]map[string]string
	Usage     map[string][2]int64
	Downloads map[string]string
}

// viewOf reads the view of srv's store for the two test accounts.
func viewOf(t *testing.T, srv *testServer) storeView {
	t.Helper()
	v := storeView{Lists: map[string][]json.RawMessage{}, Infos: map[string]map[string]string{},
		Usage: map[string][2]int64{}, Downloads: map[string]string{}}
	for _, acct := range [][2]string{{testKey, testToken}, {otherKey, otherToken}} {
		var slugs []string
		for page := 1; ; page++ {
			var res struct {
				Files []json.RawMessage `json:"files"`
			}
			postForm(t, srv.URL+"/api/v1/file/list", []field{{"api_key", acct[0]}, {"api_token", acct[1]},
				{"page", fmt.Sprint(page)}, {"per_page", "100"}}).result(t, &res)
			for _, f := range res.Files { // each server has its own address
				v.Lists[acct[0]] = append(v.Lists[acct[0]], bytes.ReplaceAll(f, []byte(srv.URL), nil))
			}
			for _, f := range res.Files {
				var x struct{ Slug, Status, Password string }
				json.Unmarshal(f, &x)
				slugs = append(slugs, x.Slug)
				if x.Status == "active" && x.Password == "false" {
					resp, body := fetch(t, srv.URL+"/m/"+x.Slug+"/download", nil)
					sum := sha256.Sum256(body)
					v.Downloads[x.Slug] = fmt.Sprint(resp.StatusCode, " ", hex.EncodeToString(sum[:]))
				}
			}
			if len(res.Files) < 100 {
				break
			}
		}
		for i := 0; i < len(slugs); i += 50 {
			var info map[string]map[string]string
			postForm(t, srv.URL+"/api/v1/file/info", []field{{"api_key", acct[0]}, {"api_token", acct[1]},
				{"files", strings.Join(slugs[i:min(i+50, len(slugs))], ",")}}).result(t, &info)
			for k, x := range info {
				x["url"] = strings.TrimPrefix(x["url"], srv.URL)
				v.Infos[k] = x
			}
		}
		u, err := srv.app.store.Usage(t.Context(), acct[0])
		if err != nil {
			t.Fatal(err)
		}
		v.Usage[acct[0]] = [2]int64{u.Bytes, u.Files}
	}
	return v
}

// migrate runs `acestash migrate` and returns what it compared.
func migrate(t *testing.T, args ...string) (compared, error) {
	t.Helper()
	var out, errs bytes.Buffer
	err := run(append([]string{"migrate"}, args...), &out, &errs)
	var c compared
	if err == nil {
		if jerr := json.Unmarshal(out.Bytes(), &c); jerr != nil {
			t.Fatalf("migrate printed %q: %v", out.String(), jerr)
		}
	}
	return c, err
}

// migrateFiles is how many files TestMigrate moves.
const migrateFiles = 2000

// TestMigrate moves a store of migrateFiles files, two accounts with quotas and a queued webhook delivery
// from the embedded store to a Redis Cluster and back into a new embedded
// store: listings, file/info, usage and downloads are identical at each
// step, and migrate itself reports both sides identical.
func TestMigrate(t *testing.T) {
	skipShort(t, "Redis Cluster")
	cfg := testConfig(t, embedded)
	cfg.Accounts[0].QuotaBytes, cfg.Accounts[0].QuotaFiles = 1<<30, 5000
	cfg.Accounts[1].QuotaBytes = 1 << 30
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a receiver that is never there
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	cfg.Webhooks = []WebhookConfig{{URL: "http://" + ln.Addr().String() + "/hook", Secret: "s"}}
	srv := start(t, cfg, nil)
	for i := range migrateFiles {
		key, token := testKey, testToken
		if i%2 == 1 {
			key, token = otherKey, otherToken
		}
		var info uploadInfo
		postForm(t, srv.URL+"/api/v1/file/upload", []field{{"api_key", key}, {"api_token", token}}).result(t, &info)
		fields := []field{{"api_key", key}, {"api_token", token}, {"cTracker", info.CTracker},
			{"upload_key", info.UploadKey}, {"mirrors[]", "1"}, {"mirrors[]", "2"}}
		if i%97 == 0 {
			fields = append(fields, field{"file_password", "pw"})
		}
		var res uploadResult
		postMultipart(t, srv.URL+"/api/v1/upload", fields, "files[]", "f.bin", testData(i*13%4000, byte(i)), nil).result(t, &res)
		if i%10 == 3 {
			postForm(t, srv.URL+"/api/v1/file/delete", []field{{"api_key", otherKey}, {"api_token", otherToken}, {"files", res.Slug}})
		}
	}
	want := viewOf(t, srv)
	srv.stop()
	boltPath := filepath.Join(cfg.DataDir, "acestash.db")

	cluster := redistest.StartCluster(t, 3)
	c, err := migrate(t, "--from", "bolt:"+boltPath, "--to", cluster.URL)
	if err != nil {
		t.Fatalf("migrate to Redis Cluster: %v", err)
	}
	if !c.Identical || c.From.Files != migrateFiles || c.From.Accounts != 2 || c.From.Deliveries == 0 {
		t.Fatalf("migrate to Redis Cluster compared %+v; want %d files, 2 accounts, deliveries queued, identical", c, migrateFiles)
	}
	if _, err := migrate(t, "--from", "bolt:"+boltPath, "--to", cluster.URL); err == nil || !strings.Contains(err.Error(), "already holds records") {
		t.Fatalf("migrate into a store that holds records: %v", err)
	}
	if c, err := migrate(t, "--from", "bolt:"+boltPath, "--to", cluster.URL, "--resume"); err != nil || !c.Identical {
		t.Fatalf("migrate --resume again: %+v, %v", c, err)
	}
	onRedis := cfg
	onRedis.RedisURL, onRedis.Listen, onRedis.PublicURL = cluster.URL, "", ""
	onRedis.Webhooks = nil // the receiver is not there; the delivery stays queued
	srv = start(t, onRedis, nil)
	if got := viewOf(t, srv); !reflect.DeepEqual(got, want) {
		t.Fatalf("on Redis Cluster the view differs:\n%s", viewDiff(got, want))
	}
	srv.stop()

	back := filepath.Join(t.TempDir(), "acestash.db")
	c, err = migrate(t, "--from", cluster.URL, "--to", "bolt:"+back)
	if err != nil || !c.Identical || c.To.Files != migrateFiles {
		t.Fatalf("migrate back: %+v, %v", c, err)
	}
	again := onRedis
	again.RedisURL, again.DataDir = "", filepath.Dir(back)
	srv = start(t, again, nil)
	if got := viewOf(t, srv); !reflect.DeepEqual(got, want) {
		t.Fatalf("back on the embedded store the view differs:\n%s", viewDiff(got, want))
	}
	sum, err := dump.Summarize(t.Context(), srv.app.store)
	if err != nil || sum != c.From {
		t.Fatalf("the store back home: %+v, %v; want %+v", sum, err, c.From)
	}
	os.Remove(back)
}

// viewDiff names a few differences between two views.
func viewDiff(got, want storeView) string {
	var out []string
	if !reflect.DeepEqual(got.Usage, want.Usage) {
		out = append(out, fmt.Sprintf("usage %v, want %v", got.Usage, want.Usage))
	}
	for k, w := range want.Infos {
		if !reflect.DeepEqual(got.Infos[k], w) && len(out) < 5 {
			out = append(out, fmt.Sprintf("file/info %s: %v, want %v", k, got.Infos[k], w))
		}
	}
	for k, w := range want.Downloads {
		if got.Downloads[k] != w && len(out) < 10 {
			out = append(out, fmt.Sprintf("download %s: %s, want %s", k, got.Downloads[k], w))
		}
	}
	for k, w := range want.Lists {
		if !reflect.DeepEqual(got.Lists[k], w) && len(out) < 12 {
			out = append(out, fmt.Sprintf("file/list of %s: %d entries, want %d", k, len(got.Lists[k]), len(w)))
		}
	}
	return strings.Join(out, "\n")
}
