package pace

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// serve runs handle for each request on a loopback server and returns its
// address.
func serve(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(handle)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// trickle sends a request to path whose body brings fast bytes at once and
// then one byte every 50 ms until the server closes the connection.
func trickle(addr, path string, fast int) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return // the test fails waiting for the request
	}
	defer conn.Close()
	io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	conn.Write(make([]byte, fast))
	for range 100 {
		if _, err := conn.Write([]byte{0}); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlowBodyFails: a body under the rate fails with a SlowError about a
// window after it slowed, having given every byte that came before.
func TestSlowBodyFails(t *testing.T) {
	const window = 300 * time.Millisecond
	got := make(chan error, 1)
	read := make(chan int64, 1)
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b := New(r.Body, http.NewResponseController(w), 10000, window) // 3000 bytes a window
		n, err := io.Copy(io.Discard, b)
		read <- n
		got <- err
	})
	start := time.Now()
	go trickle(addr, "/", 5000)
	err := <-got
	if !errors.Is(err, ErrSlow) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("slow body: %v, want ErrSlow and the deadline", err)
	}
	if n := <-read; n < 5000 {
		t.Errorf("read %d bytes before the cut, want the 5000 sent at once", n)
	}
	if took := time.Since(start); took > 10*window {
		t.Errorf("cut after %v, want about two windows of %v", took, window)
	}
}

// TestFastBodyAndStop: a body at speed is read whole and leaves no
// deadline behind; Stop ends a read in progress at once.
func TestFastBodyAndStop(t *testing.T) {
	got := make(chan error, 2)
	stopNow := make(chan *Body, 1)
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b := New(r.Body, http.NewResponseController(w), 10000, time.Minute)
		if r.URL.Path == "/stop" {
			stopNow <- b
		}
		_, err := io.Copy(io.Discard, b)
		got <- err
	})
	resp, err := http.Post("http://"+addr+"/fast", "application/octet-stream", io.LimitReader(zeros{}, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-got; err != nil {
		t.Fatalf("fast body: %v", err)
	}
	go trickle(addr, "/stop", 10)
	b := <-stopNow
	time.Sleep(100 * time.Millisecond) // let the read begin waiting; either way it must end
	start := time.Now()
	b.Stop()
	err = <-got
	if errors.Is(err, ErrSlow) || time.Since(start) > 5*time.Second {
		t.Fatalf("stopped body: %v after %v, want the read ended at once, not as too slow", err, time.Since(start))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
