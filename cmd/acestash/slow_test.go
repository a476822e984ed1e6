package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowClientsCut opens 40 connections that send an upload's body at one
// byte a second, one that sends a tus PATCH as slowly and one that sends its
// headers as slowly: the server cuts each within a few body windows, while a
// client at normal speed uploads.
func TestSlowClientsCut(t *testing.T) {
	cfg := testConfig(t, embedded)
	cfg.Limits.MinBodyRate, cfg.Limits.BodyWindow = 1000, time.Second
	cfg.Limits.HeaderTimeout = time.Second
	srv := start(t, cfg, nil)
	addr := strings.TrimPrefix(srv.URL, "http://")

	// cut reports how long the server took to end the connection after
	// the request started, the client sending one byte a second.
	cut := func(head string) (time.Duration, error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, head); err != nil {
			return 0, err
		}
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			io.Copy(io.Discard, bufio.NewReader(conn)) // until the server closes
		}()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-closed:
				return time.Since(start), nil
			case <-tick.C:
				if time.Since(start) > 30*time.Second {
					return 0, fmt.Errorf("still open after %v", time.Since(start))
				}
				conn.Write([]byte("x")) // fails harmlessly once closed
			}
		}
	}
	body := "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
	var wg sync.WaitGroup
	took := make([]time.Duration, 40)
	errs := make([]error, 40)
	for i := range took {
		wg.Go(func() { took[i], errs[i] = cut(body) })
	}
	headers, herr := cut("POST /upload HTTP/1.1\r\nHost: x\r\n")
	// A tus PATCH is held to the same pace.
	tusTook, tusErr := cut(tusPatchHead(t, srv.URL, 100000))
	// A fast client meanwhile is served.
	data := testData(200000, 3)
	resp, got := fetchPost(t, srv.URL+"/upload", data)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("slow body %d: %v", i, err)
		}
		if took[i] > 5*time.Second {
			t.Errorf("slow body %d was cut after %v, want within a few 1 s windows", i, took[i])
		}
	}
	if tusErr != nil || tusTook > 5*time.Second {
		t.Errorf("slow tus PATCH: cut after %v (%v), want within a few 1 s windows", tusTook, tusErr)
	}
	if herr != nil || headers > 5*time.Second {
		t.Errorf("slow headers: cut after %v (%v), want about the 1 s header timeout", headers, herr)
	}
	if resp != 200 || !strings.HasPrefix(got, srv.URL+"/uploads/") {
		t.Fatalf("a fast upload beside the slow ones: %d %q", resp, got)
	}
	t.Logf("40 slow bodies cut after %v to %v; a slow tus PATCH after %v; slow headers after %v",
		slices.Min(took).Round(time.Millisecond), slices.Max(took).Round(time.Millisecond), tusTook, headers)
}

// tusPatchHead creates a tus upload of size bytes and returns the head of a
// PATCH that sends them.
func tusPatchHead(t *testing.T, base string, size int) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/files/", nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := "Bearer " + testKey + ":" + testToken
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", auth)
	req.Header.Set("Upload-Length", fmt.Sprint(size))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusCreated || err != nil {
		t.Fatalf("POST /files/: %s, Location %v", resp.Status, err)
	}
	return fmt.Sprintf("PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nAuthorization: %s\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: %d\r\n\r\n", loc.Path, auth, size)
}

func fetchPost(t *testing.T, u string, body []byte) (int, string) {
	t.Helper()
	resp, err := httpPost(u, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func httpPost(u string, body []byte) (*http.Response, error) {
	return http.Post(u, "application/octet-stream", bytes.NewReader(body))
}
