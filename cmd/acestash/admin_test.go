package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const testAdminToken = "admin-secret-0123456789"

// cli runs the acestash binary with args against the server at base,
// finding it and the admin token in the environment, and returns its
// standard output; a failure is returned as an error with its message.
func cli(t *testing.T, base string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "ACESTASH_SERVER="+base, "ACESTASH_ADMIN_TOKEN="+testAdminToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// cliJSON runs cli, fails the test on an error, and decodes the output.
func cliJSON(t *testing.T, base string, v any, args ...string) {
	t.Helper()
	out, err := cli(t, base, args...)
	if err != nil {
		t.Fatalf("acestash %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("acestash %s printed %q: %v", strings.Join(args, " "), out, err)
	}
}

// adminFile is a file as the admin commands print it.
type adminFile struct {
	ID      int64    `json:"id"`
	Slug    string   `json:"slug"`
	Name    string   `json:"name"`
	Size    int64    `json:"size"`
	SHA256  string   `json:"sha256"`
	Owner   string   `json:"owner"`
	Status  string   `json:"status"`
	URL     string   `json:"url"`
	Mirrors []string `json:"mirrors"`
}

type adminAccount struct {
	Name           string   `json:"name"`
	APIKey         string   `json:"api_key"`
	APIToken       string   `json:"api_token"`
	Mirrors        []string `json:"mirrors"`
	DefaultMirrors []string `json:"default_mirrors"`
	MaxMirrors     int      `json:"max_mirrors"`
	QuotaBytes     int64    `json:"quota_bytes"`
	QuotaFiles     int64    `json:"quota_files"`
}

// TestAdminCLI runs the CLI binary against a running acestash process on
// the embedded default: listing, inspecting and removing files (gone from
// every mirror, the page and file/info say why), and the whole life of an
// account.
func TestAdminCLI(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.AdminToken = testAdminToken
	p := startProc(t, cfg)
	srv := &testServer{URL: p.URL, cfg: cfg}

	if _, err := cli(t, p.URL, "files", "ls", "--admin-token", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong admin token: %v", err)
	}
	cmd := exec.Command(binary(t), "accounts", "ls", "--server", p.URL)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "ACESTASH_ADMIN_TOKEN=") })
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no admin token") {
		t.Fatalf("no admin token: %v %s", err, out)
	}

	data := testData(5000, 21)
	u := newUpload(t, srv, "1", "2")
	var a uploadResult
	u.send("", data).result(t, &a)
	b := mirageURL(t, srv, mirageUpload(t, p.URL+"/upload", testData(300, 22), false))
	bSlug := strings.TrimPrefix(b, p.URL+"/uploads/")

	var list struct {
		Files []adminFile `json:"files"`
		Total int         `json:"total"`
	}
	cliJSON(t, p.URL, &list, "files", "ls", "--account", testKey)
	if list.Total != 2 || len(list.Files) != 2 || list.Files[0].Slug != bSlug || list.Files[1].Slug != a.Slug {
		t.Fatalf("files ls --account: %+v, want %s then %s", list, bSlug, a.Slug)
	}
	cliJSON(t, p.URL, &list, "files", "ls", "--limit", "1", "--server", p.URL, "--admin-token", testAdminToken)
	if list.Total != 2 || len(list.Files) != 1 || list.Files[0].Slug != bSlug {
		t.Fatalf("files ls --limit 1 (flags, not the environment): %+v", list)
	}

	var f adminFile
	cliJSON(t, p.URL, &f, "files", "info", a.Slug)
	sum := sha256.Sum256(data)
	if f.Status != "active" || f.Size != int64(len(data)) || f.SHA256 != hex.EncodeToString(sum[:]) ||
		f.Owner != testKey || !slices.Equal(f.Mirrors, []string{"1", "2"}) || f.URL != p.URL+"/m/"+a.Slug {
		t.Fatalf("files info: %+v", f)
	}

	if _, err := cli(t, p.URL, "files", "rm", a.Slug, "--reason", "spite"); err == nil {
		t.Fatal("files rm with a reason other than admin or copyright succeeded")
	}
	objects := storedObjects(t, srv)
	cliJSON(t, p.URL, &f, "files", "rm", a.Slug, "--reason", "copyright")
	if f.Status != "copyright removed" || len(f.Mirrors) != 0 {
		t.Fatalf("files rm: %+v", f)
	}
	if got := storedObjects(t, srv); got != objects-2 {
		t.Fatalf("the mirrors hold %d objects after the removal, want %d (the file gone from both)", got, objects-2)
	}
	resp, page := fetch(t, p.URL+"/m/"+a.Slug, nil)
	if resp.StatusCode != 410 || !strings.Contains(string(page), "copyright removed") {
		t.Fatalf("page of a removed file: %s %q", resp.Status, page)
	}
	if st := fileInfo(t, srv, testKey, testToken, a.Slug)["status"]; st != "copyright removed" {
		t.Fatalf("file/info status of a removed file: %q", st)
	}
	cliJSON(t, p.URL, &f, "files", "rm", bSlug, "--reason", "admin")
	if st := fileInfo(t, srv, testKey, testToken, bSlug)["status"]; st != "admin removed" {
		t.Fatalf("file/info status after --reason admin: %q", st)
	}
	if _, err := cli(t, p.URL, "files", "info", "NoSuchFile"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("files info of a missing slug: %v", err)
	}
	if _, err := cli(t, p.URL, "files", "rm", "NoSuchFile", "--reason", "admin"); err == nil || !strings.Contains(err.Error(), "file NoSuchFile not found") {
		t.Fatalf("files rm of a missing slug: %v", err)
	}

	// Accounts: create, use, set, rotate, remove.
	var acct adminAccount
	cliJSON(t, p.URL, &acct, "accounts", "create", "--name", "Carol", "--mirrors", "1", "--quota-bytes", "5000")
	if acct.APIKey == "" || acct.APIToken == "" || !slices.Equal(acct.Mirrors, []string{"1"}) || acct.QuotaBytes != 5000 {
		t.Fatalf("accounts create: %+v", acct)
	}
	login := func(key, token string) answer {
		return postForm(t, p.URL+"/api/v1/file/upload", []field{{"api_key", key}, {"api_token", token}})
	}
	var info uploadInfo
	login(acct.APIKey, acct.APIToken).result(t, &info)
	if !info.Mirrors["1"] || info.Mirrors["2"] || info.Mirrors["3"] {
		t.Fatalf("the new account's mirrors: %+v", info.Mirrors)
	}
	var set adminAccount
	cliJSON(t, p.URL, &set, "accounts", "set", acct.APIKey, "--max-mirrors", "1", "--quota-files", "3", "--mirrors", "1,2")
	if set.MaxMirrors != 1 || set.QuotaFiles != 3 || set.QuotaBytes != 5000 || !slices.Equal(set.Mirrors, []string{"1", "2"}) || set.APIToken != "" {
		t.Fatalf("accounts set: %+v", set)
	}
	if _, err := cli(t, p.URL, "accounts", "set", acct.APIKey, "--mirrors", "9"); err == nil || !strings.Contains(err.Error(), `no mirror "9"`) {
		t.Fatalf("accounts set with an unknown mirror: %v", err)
	}
	if _, err := cli(t, p.URL, "accounts", "set", acct.APIKey, "--quota-bytes", "-1"); err == nil || !strings.Contains(err.Error(), "quota_bytes may not be negative") {
		t.Fatalf("accounts set with a negative quota: %v", err)
	}
	var accts struct{ Accounts []adminAccount }
	cliJSON(t, p.URL, &accts, "accounts", "ls")
	if !slices.ContainsFunc(accts.Accounts, func(x adminAccount) bool { return x.APIKey == acct.APIKey && x.Name == "Carol" }) {
		t.Fatalf("accounts ls lacks the new account: %+v", accts)
	}
	var rot adminAccount
	cliJSON(t, p.URL, &rot, "accounts", "rotate-token", acct.APIKey)
	if rot.APIToken == "" || rot.APIToken == acct.APIToken {
		t.Fatalf("accounts rotate-token: %+v", rot)
	}
	if login(acct.APIKey, acct.APIToken).errText(t) == "" {
		t.Fatal("the old token still works")
	}
	login(acct.APIKey, rot.APIToken).result(t, &info)
	if _, err := cli(t, p.URL, "accounts", "rm", acct.APIKey); err != nil {
		t.Fatal(err)
	}
	login(acct.APIKey, rot.APIToken).errText(t)
	cliJSON(t, p.URL, &accts, "accounts", "ls")
	if slices.ContainsFunc(accts.Accounts, func(x adminAccount) bool { return x.APIKey == acct.APIKey }) {
		t.Fatal("accounts ls still lists the removed account")
	}
	p.stop()
}

// TestAccountSettingsOneCheck: an account's settings are checked by one
// rule, whose words the operator sees the same from the config file, the
// admin API (creating or changing an account) and the store.
func TestAccountSettingsOneCheck(t *testing.T) {
	for _, c := range []struct{ yaml, json, want string }{
		{"quota_bytes: -1", `"quota_bytes": -1`, "quota_bytes may not be negative"},
		{"default_expiry: 8d\n    max_expiry: 1w", `"default_expiry": "8d", "max_expiry": "1w"`, "default_expiry is longer than max_expiry"},
		{"max_expiry: forever", `"max_expiry": "forever"`, `max_expiry: "forever" is not a duration such as 30m, 12h, 7d or 2w`},
	} {
		path := filepath.Join(t.TempDir(), "acestash.yml")
		conf := "accounts:\n  - name: Dora\n    api_key: k\n    api_token: t\n    " + c.yaml + "\n"
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), "accounts[0] (Dora): "+c.want) {
			t.Errorf("config with %s: %v; want %q", c.yaml, err, c.want)
		}
	}

	cfg := testConfig(t, embedded)
	cfg.AdminToken = testAdminToken
	srv := start(t, cfg, nil)
	admin := func(method, path, body string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+"/api/admin"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, b := doRaw(t, req)
		var e struct{ Error string }
		json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error
	}
	want := "quota_bytes may not be negative"
	if code, msg := admin(http.MethodPost, "/accounts", `{"name": "Dora", "quota_bytes": -1}`); code != 400 || msg != want {
		t.Errorf("create with a negative quota: %d %q; want 400 %q", code, msg, want)
	}
	if code, msg := admin(http.MethodPatch, "/accounts/"+testKey, `{"quota_bytes": -1}`); code != 400 || msg != want {
		t.Errorf("set a negative quota: %d %q; want 400 %q", code, msg, want)
	}
	if code, msg := admin(http.MethodPatch, "/accounts/"+testKey, `{"default_expiry": "8d", "max_expiry": "1w"}`); code != 400 || msg != "default_expiry is longer than max_expiry" {
		t.Errorf("set default_expiry past max_expiry: %d %q", code, msg)
	}
	a, err := srv.app.store.Account(context.Background(), testKey)
	if err != nil {
		t.Fatal(err)
	}
	if a.QuotaBytes != 0 || a.DefaultExpiry != 0 {
		t.Fatalf("a refused change was kept: %+v", a)
	}
	a.QuotaBytes = -1
	if err := srv.app.store.PutAccount(context.Background(), a); err == nil || !strings.HasSuffix(err.Error(), ": "+want) {
		t.Errorf("the store took a negative quota: %v; want %q", err, want)
	}
}

// TestAdminOff: without admin_token the admin API refuses every call, even
// one that sends a token.
func TestAdminOff(t *testing.T) {
	srv := start(t, testConfig(t, embedded), nil)
	resp, body := fetch(t, srv.URL+"/api/admin/accounts", map[string][]string{"Authorization": {"Bearer "}})
	var e struct{ Error string }
	if resp.StatusCode != 403 || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "admin API is off") {
		t.Fatalf("admin API without admin_token: %s %s", resp.Status, body)
	}
}
