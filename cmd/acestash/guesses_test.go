package main

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
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
