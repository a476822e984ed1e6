package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acestash/acestash/store/storetest"
)

// TestRequestErrors checks every request error of the MirrorAce dialect:
// HTTP 200, status "error" and a message that says what to fix.
func TestRequestErrors(t *testing.T) {
	srv := smallChunkServer(t, embedded)
	creds := []field{{"api_key", testKey}, {"api_token", testToken}}
	api := srv.URL + "/api/v1/"

	expect := func(t *testing.T, a answer, want string) {
		t.Helper()
		if msg := a.errText(t); !strings.Contains(msg, want) {
			t.Fatalf("error %q does not say %q", msg, want)
		}
	}
	t.Run("credentials", func(t *testing.T) {
		expect(t, postForm(t, api+"file/upload", nil), "api_key and api_token are required")
		expect(t, postForm(t, api+"file/upload", []field{{"api_key", testKey}, {"api_token", otherToken}}), "invalid api_key or api_token")
		expect(t, postForm(t, api+"file/upload", []field{{"api_key", "nobody"}, {"api_token", testToken}}), "invalid api_key or api_token")
		expect(t, postForm(t, api+"file/info", []field{{"api_key", testKey}, {"api_token", "x"}, {"files", "abc"}}), "invalid api_key or api_token")
		u := newUpload(t, srv)
		u.fields[1].value = otherToken
		expect(t, u.send("", []byte("x")), "invalid api_key or api_token")
	})
	t.Run("upload key", func(t *testing.T) {
		u := newUpload(t, srv)
		// The other account's credentials with this account's key.
		u.fields[0], u.fields[1] = field{"api_key", otherKey}, field{"api_token", otherToken}
		expect(t, u.send("", []byte("x")), "upload_key belongs to another api_key")
		u = newUpload(t, srv)
		u.fields[3].value = "0123456789abcdef0123456789abcdef"
		expect(t, u.send("", []byte("x")), "upload_key not found or expired")
		u = newUpload(t, srv)
		u.fields[2].value = "0123456789abcdef0123456789abcdef"
		expect(t, u.send("", []byte("x")), "cTracker does not match the upload_key")
	})
	t.Run("mirrors", func(t *testing.T) {
		expect(t, newUpload(t, srv, "9").send("", []byte("x")), `mirror "9" does not exist`)
		expect(t, newUpload(t, srv, "3").send("", []byte("x")), `mirror "3" is not allowed for this account`)
		u := newUpload(t, srv)
		u.fields = u.fields[:4]
		expect(t, u.send("", []byte("x")), "no mirrors selected")
	})
	t.Run("too many mirrors", func(t *testing.T) {
		// otherKey may use every mirror; give it a max_mirrors of 2.
		cfg := testConfig(t, embedded)
		cfg.Accounts[1].MaxMirrors = 2
		srv := start(t, cfg, nil)
		var info uploadInfo
		postForm(t, srv.URL+"/api/v1/file/upload", []field{{"api_key", otherKey}, {"api_token", otherToken}}).result(t, &info)
		fields := []field{{"api_key", otherKey}, {"api_token", otherToken}, {"cTracker", info.CTracker},
			{"upload_key", info.UploadKey}, {"mirrors[1]", "1"}, {"mirrors[2]", "2"}, {"mirrors[3]", "3"}}
		a := postMultipart(t, info.ServerFile, fields, "files[]", "f", []byte("x"), nil)
		expect(t, a, "3 mirrors selected, more than this account's maximum of 2")
	})
	t.Run("sizes", func(t *testing.T) {
		u := newUpload(t, srv)
		expect(t, u.send("bytes 0-999/10737418241", make([]byte, 1000)), "over the maximum file size of 10737418240 bytes")
		u = newUpload(t, srv)
		expect(t, u.send("bytes 0-1001/5000", make([]byte, 1002)), "chunk is over its limit of 1001 bytes")
		u = newUpload(t, srv)
		expect(t, u.send("", make([]byte, 1002)), "chunk is over its limit of 1001 bytes")
		u = newUpload(t, srv)
		expect(t, u.send("bytes 0-9/10", make([]byte, 11)), "chunk goes past the Content-Range total of 10 bytes")
	})
	t.Run("content range", func(t *testing.T) {
		u := newUpload(t, srv)
		expect(t, u.send("bytes=zero-9/10", make([]byte, 10)), `malformed Content-Range "bytes=zero-9/10"`)
		expect(t, u.send("bytes 0-20/10", make([]byte, 10)), "end 20 is past the total 10")
		var r uploadResult
		u.send("bytes 0-499/2000", make([]byte, 500)).result(t, &r)
		expect(t, u.send("bytes 500-999/3000", make([]byte, 500)), "total changed from 2000 to 3000")
		expect(t, u.send("bytes 700-999/2000", make([]byte, 300)), "Content-Range start 700 does not continue this upload: expected 500")
		expect(t, u.send("", make([]byte, 10)), "this upload already holds 500 bytes")
	})
	t.Run("no file", func(t *testing.T) {
		u := newUpload(t, srv)
		expect(t, postMultipart(t, srv.URL+"/api/v1/upload", u.fields, "", "", nil, nil), "no file")
	})
	t.Run("file info", func(t *testing.T) {
		var many []string
		for i := range 51 {
			many = append(many, fmt.Sprintf("s%07d", i))
		}
		expect(t, postForm(t, api+"file/info", append(creds, field{"files", strings.Join(many, ",")})), "51 slugs; at most 50 per call")
		expect(t, postForm(t, api+"file/info", creds), "files is required")
		var info map[string]map[string]string
		postForm(t, api+"file/info", append(creds, field{"files", strings.Join(many[:50], ",")})).result(t, &info)
		if len(info) != 50 || info["s0000049"]["status"] != "not found" || info["s0000049"]["id"] != "null" || info["s0000049"]["name"] != "null" {
			t.Fatalf("file/info of 50 unknown slugs: %d entries, %v", len(info), info["s0000049"])
		}
	})
	t.Run("remote not enabled", func(t *testing.T) {
		cfg := testConfig(t, embedded)
		off := false
		cfg.Remote.Enabled = &off
		srv := start(t, cfg, nil)
		u := newUpload(t, srv)
		a := postForm(t, srv.URL+"/api/v1/upload/remote", append(u.fields, field{"url", "http://example.com/x"}))
		expect(t, a, "remote upload is not enabled")
	})
	t.Run("envelope everywhere", func(t *testing.T) {
		a := postForm(t, api+"no/such/call", creds)
		if a.code != 404 || a.env.Status != "error" || !strings.Contains(string(a.env.Result), "unknown API call") {
			t.Fatalf("unknown call: %s", a)
		}
		req, _ := http.NewRequest(http.MethodGet, api+"file/info", nil)
		a = do(t, req)
		if a.code != 405 || a.env.Status != "error" || !strings.Contains(string(a.env.Result), "POST") {
			t.Fatalf("GET file/info: %s", a)
		}
		huge := strings.Repeat("x", 2<<20)
		a = postForm(t, api+"file/info", append(creds, field{"files", huge}))
		if msg := a.errText(t); !strings.Contains(msg, "too large") {
			t.Fatalf("oversize body: %q", msg)
		}
	})
}

// TestUploadKeyExpiry moves the clock: an unused key lapses after an hour;
// a key whose upload started does not.
func TestUploadKeyExpiry(t *testing.T) {
	clock := storetest.NewClock(time.Now().UTC())
	cfg := testConfig(t, embedded)
	cfg.Limits.MaxChunkSize = testChunk
	srv := start(t, cfg, clock)

	unused := newUpload(t, srv)
	started := newUpload(t, srv)
	want := clock.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05")
	if unused.info.UploadKeyExpiry != want {
		t.Fatalf("upload_key_expiry %q, want %q", unused.info.UploadKeyExpiry, want)
	}
	data := testData(1500, 3)
	var r uploadResult
	clock.Advance(59 * time.Minute)
	started.send("bytes 0-999/1500", data[:1000]).result(t, &r)

	clock.Advance(2 * time.Minute)
	msg := unused.send("", []byte("late")).errText(t)
	if !strings.Contains(msg, "upload_key not found or expired") {
		t.Fatalf("expired key: %q", msg)
	}
	clock.Advance(5 * time.Hour)
	started.send("bytes 1000-1499/1500", data[1000:]).result(t, &r)
	checkComplete(t, srv, r, "f.bin", data)
}
