package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/acestash/acestash/store/storetest"
)

// TestGuessesAcrossNodes guesses a file's password on two nodes sharing
// Redis: the limit counts the guesses of both, so two nodes allow no more
// than one; the owner, at another address, still gets the file.
func TestGuessesAcrossNodes(t *testing.T) {
	_, cfg := clusterConfig(t)
	nodes := []*testServer{start(t, cfg, nil), start(t, cfg, nil)}
	data := testData(1500, 41)
	u := newUpload(t, nodes[0], "1")
	u.fields = append(u.fields, field{"file_password", "right one"})
	var r uploadResult
	u.send("", data).result(t, &r)

	guesser := func(i int) http.Header {
		return http.Header{"X-File-Password": {fmt.Sprint("guess ", i)}, "X-Forwarded-For": {"198.51.100.9"}}
	}
	wrong := 0
	for i := range 30 {
		resp, _ := fetch(t, nodes[i%2].URL+"/m/"+r.Slug+"/download", guesser(i))
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("guess %d: %d", i, resp.StatusCode)
		}
		wrong++
	}
	if wrong != 10 {
		t.Fatalf("%d wrong guesses over two nodes before 429, want 10", wrong)
	}
	for _, n := range nodes {
		right := guesser(0)
		right.Set("X-File-Password", "right one")
		if resp, _ := fetch(t, n.URL+"/m/"+r.Slug+"/download", right); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the guesser's right password on %s: %d, want 429", n.URL, resp.StatusCode)
		}
		owner := http.Header{"X-File-Password": {"right one"}, "X-Forwarded-For": {"192.0.2.44"}}
		if resp, body := fetch(t, n.URL+"/m/"+r.Slug+"/download", owner); resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("the owner's right password on %s: %d", n.URL, resp.StatusCode)
		}
	}
}

// TestGuessesAtOnce sends many wrong passwords from one address at the
// same moment: they are limited like guesses one after another, so no more
// than the limit of them are tried.
func TestGuessesAtOnce(t *testing.T) {
	srv := start(t, testConfig(t, embedded), nil)
	u := newUpload(t, srv, "1")
	u.fields = append(u.fields, field{"file_password", "right one"})
	var r uploadResult
	u.send("", testData(100, 42)).result(t, &r)
	cheapPassword(t, srv, r.Slug, "right one")

	const n = 40
	codes := make(chan int, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodGet, srv.URL+"/m/"+r.Slug+"/download", nil)
			if err != nil {
				errs <- err
				return
			}
			req.Header.Set("X-File-Password", fmt.Sprint("guess ", i))
			req.Header.Set("X-Forwarded-For", "198.51.100.7")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tried := 0
	for c := range codes {
		switch c {
		case http.StatusForbidden:
			tried++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("a wrong guess got %d", c)
		}
	}
	if tried != 10 {
		t.Fatalf("%d of %d simultaneous wrong guesses were tried, want 10", tried, n)
	}
	owner := http.Header{"X-File-Password": {"right one"}, "X-Forwarded-For": {"192.0.2.45"}}
	if resp, _ := fetch(t, srv.URL+"/m/"+r.Slug+"/download", owner); resp.StatusCode != http.StatusOK {
		t.Fatalf("the owner's right password: %d", resp.StatusCode)
	}
}

// TestGuessesFromManyAddresses guesses a file's password from 250 fresh
// addresses, 100 of them IPv6 in one /64: the /64 counts as one address,
// and the file's cap over all addresses holds, so no more than 100 are
// evaluated and then even the right password is refused, but not to the
// signed-in owner, whose page says that guessing was throttled. The lock
// lifts after its time.
func TestGuessesFromManyAddresses(t *testing.T) {
	clock := storetest.NewClock(time.Now().UTC())
	srv := start(t, testConfig(t, embedded), clock)
	data := testData(700, 43)
	var r uploadResult
	mirrorAceUpload(t, srv, data, field{"file_password", "right one"}).result(t, &r)
	cheapPassword(t, srv, r.Slug, "right one")
	dl := srv.URL + "/m/" + r.Slug + "/download"
	guess := func(addr, pw string) int {
		resp, _ := fetch(t, dl, http.Header{"X-File-Password": {pw}, "X-Forwarded-For": {addr}})
		return resp.StatusCode
	}
	evaluated := map[string]int{}
	for i := range 250 {
		kind, addr := "ipv4", fmt.Sprintf("198.51.%d.%d", 100+i/200, i%200+1)
		if i < 100 {
			kind, addr = "ipv6", fmt.Sprintf("2001:db8:1:2:%x::%x", i, i+1)
		}
		switch code := guess(addr, fmt.Sprint("guess ", i)); code {
		case http.StatusForbidden:
			evaluated[kind]++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("guess %d from %s: %d", i, addr, code)
		}
	}
	if evaluated["ipv6"] != 10 || evaluated["ipv4"]+evaluated["ipv6"] != 100 {
		t.Fatalf("evaluated %v; want 10 from the /64 and 100 in all", evaluated)
	}
	if code := guess("192.0.2.200", "right one"); code != http.StatusTooManyRequests {
		t.Fatalf("the right password from a fresh address while the file is locked: %d", code)
	}

	// The owner, signed in, is neither refused nor counted.
	jar, _ := cookiejar.New(nil)
	owner := &http.Client{Jar: jar}
	resp, err := owner.PostForm(srv.URL+"/web/signin", url.Values{"api_key": {testKey}, "api_token": {testToken}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sign in: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, c := range []struct {
		pw   string
		code int
	}{{"wrong", http.StatusForbidden}, {"right one", http.StatusOK}} {
		req, _ := http.NewRequest(http.MethodGet, dl, nil)
		req.Header.Set("X-File-Password", c.pw)
		req.Header.Set("X-Forwarded-For", "198.51.100.1")
		resp, err := owner.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || c.code == 200 && !bytes.Equal(body, data) {
			t.Fatalf("the owner with %q: %d", c.pw, resp.StatusCode)
		}
	}
	resp, err = owner.Get(srv.URL + "/m/" + r.Slug)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "Guessing is throttled") {
		t.Fatalf("the owner's page does not say guessing was throttled: %s", page)
	}
	if _, other := fetch(t, srv.URL+"/m/"+r.Slug, nil); strings.Contains(string(other), `id="guessing"`) {
		t.Fatal("a visitor's page shows the owner's guessing report")
	}

	clock.Advance(16 * time.Minute)
	if code := guess("192.0.2.201", "right one"); code != http.StatusOK {
		t.Fatalf("the right password once the lock ended: %d", code)
	}
}

// cheapPassword gives the file slug the password pw hashed at bcrypt's
// lowest cost, so that the hundred wrong guesses a test sends take
// milliseconds rather than seconds: what is counted and answered is the
// same (TestPassword checks the hash an upload makes).
func cheapPassword(t *testing.T, srv *testServer, slug, pw string) {
	t.Helper()
	ctx := context.Background()
	f, err := srv.app.store.File(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword(f.PasswordHash, []byte(pw)) != nil {
		t.Fatalf("file %s was not stored with the password %q", slug, pw)
	}
	if f.PasswordHash, err = bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost); err != nil {
		t.Fatal(err)
	}
	if err := srv.app.store.UpdateFile(ctx, f); err != nil {
		t.Fatal(err)
	}
}
