package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests never send traffic to an address outside 127.0.0.0/8 and
// ::1: servers listen on loopback, host names resolve through LookupIP
// hooks or a resolver that cannot reach any DNS server, and tests of
// non-loopback addresses replace the dialer with one that fails the test.

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// server is a test HTTP server on a loopback address that counts the
// connections it accepts.
type server struct {
	*httptest.Server
	ln *countingListener
}

func (s *server) accepts() int64 { return s.ln.n.Load() }

func (s *server) port() string {
	_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	return p
}

// newServerOn starts a server listening on addr, or returns nil if it
// cannot listen there.
func newServerOn(t *testing.T, addr string, h http.Handler) *server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil
	}
	cl := &countingListener{Listener: ln}
	hs := httptest.NewUnstartedServer(h)
	hs.Listener.Close()
	hs.Listener = cl
	hs.Start()
	t.Cleanup(hs.Close)
	return &server{Server: hs, ln: cl}
}

func newServer(t *testing.T, h http.Handler) *server {
	t.Helper()
	s := newServerOn(t, "127.0.0.1:0", h)
	if s == nil {
		t.Fatal("cannot listen on 127.0.0.1")
	}
	return s
}

// noDNS is a resolver that answers from /etc/hosts and the like but cannot
// send a DNS query anywhere.
func noDNS() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, errors.New("test: DNS queries are not allowed")
		},
	}
}

// forbidDial returns a Dial that fails the test if it is ever reached.
func forbidDial(t *testing.T) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		t.Errorf("dialled %s", addr)
		return nil, errors.New("test: dial forbidden")
	}
}

// lookup returns a LookupIP hook answering from m and failing for other
// hosts.
func lookup(m map[string][]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		ss, ok := m[host]
		if !ok {
			return nil, fmt.Errorf("test: no such host %q", host)
		}
		var as []netip.Addr
		for _, s := range ss {
			as = append(as, netip.MustParseAddr(s))
		}
		return as, nil
	}
}

func allowLoopback1() Policy {
	return Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// serve returns a handler serving data, with a Content-Length or chunked.
func serve(data []byte, withLength bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		} else {
			w.(http.Flusher).Flush() // headers out now: no Content-Length
		}
		for b := data; len(b) > 0; {
			n := min(len(b), 64<<10)
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
			if !withLength {
				w.(http.Flusher).Flush()
			}
		}
	}
}

func TestFetchSizes(t *testing.T) {
	for _, n := range []int{0, 1, 1000, 3 << 20} {
		for _, withLength := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d/length=%v", n, withLength), func(t *testing.T) {
				data := pattern(n)
				srv := newServer(t, serve(data, withLength))
				f := New(Config{Policy: allowLoopback1(), Resolver: noDNS()})
				for _, max := range []int64{int64(n), int64(n) + 1, 10 << 20, -1} {
					resp, err := f.Fetch(t.Context(), srv.URL+"/dir/data.bin", max)
					if err != nil {
						t.Fatalf("max %d: %v", max, err)
					}
					got, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil {
						t.Fatalf("max %d: reading: %v", max, err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("max %d: read %d bytes, differing from the %d served", max, len(got), n)
					}
					wantSize := int64(n)
					if !withLength {
						wantSize = -1
					}
					if resp.Size != wantSize {
						t.Errorf("Size = %d, want %d", resp.Size, wantSize)
					}
					if resp.Name != "data.bin" {
						t.Errorf("Name = %q, want data.bin", resp.Name)
					}
					if resp.Type != "application/octet-stream" {
						t.Errorf("Type = %q", resp.Type)
					}
				}
			})
		}
	}
}

func TestFetchContentDisposition(t *testing.T) {
	cases := []struct{ disp, want string }{
		{`attachment; filename="plain name.txt"`, "plain name.txt"},
		{`attachment; filename="fallback.txt"; filename*=UTF-8''na%C3%AFve%20%E6%97%A5%E6%9C%AC.txt`, "na\u00efve \u65e5\u672c.txt"},
		{`attachment; filename="../../etc/passwd"`, ".._.._etc_passwd"},
		{"", "from-url.bin"},
	}
	for _, c := range cases {
		data := pattern(100)
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.disp != "" {
				w.Header().Set("Content-Disposition", c.disp)
			}
			w.Write(data)
		}))
		f := New(Config{Policy: allowLoopback1(), Resolver: noDNS()})
		resp, err := f.Fetch(t.Context(), srv.URL+"/from-url.bin", 1000)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%q: read %d bytes, %v", c.disp, len(got), err)
		}
		if resp.Name != c.want {
			t.Errorf("%q: Name = %q, want %q", c.disp, resp.Name, c.want)
		}
	}
}

// hops serves /hop/N/final.bin by redirecting to /hop/N-1/final.bin until
// N is 0, which serves data.
func hops(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/hop/%d/final.bin", &n); err != nil {
			http.NotFound(w, r)
			return
		}
		if n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/hop/%d/final.bin", n-1), http.StatusFound)
			return
		}
		w.Write(data)
	}
}

func TestFetchRedirects(t *testing.T) {
	data := pattern(5000)
	srv := newServer(t, hops(data))
	f := New(Config{Policy: allowLoopback1(), Resolver: noDNS()})
	for n := 0; n <= 5; n++ {
		resp, err := f.Fetch(t.Context(), fmt.Sprintf("%s/hop/%d/final.bin", srv.URL, n), 1<<20)
		if err != nil {
			t.Fatalf("%d redirects: %v", n, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d redirects: read %d bytes, %v", n, len(got), err)
		}
		if resp.Name != "final.bin" {
			t.Errorf("%d redirects: Name = %q", n, resp.Name)
		}
	}

	_, err := f.Fetch(t.Context(), srv.URL+"/hop/6/final.bin", 1<<20)
	if !errors.Is(err, ErrTooManyRedirects) {
		t.Errorf("6 redirects: err = %v, want ErrTooManyRedirects", err)
	}

	f = New(Config{Policy: allowLoopback1(), Resolver: noDNS(), MaxRedirects: 2})
	if _, err := f.Fetch(t.Context(), srv.URL+"/hop/3/final.bin", 1<<20); !errors.Is(err, ErrTooManyRedirects) {
		t.Errorf("3 redirects, max 2: err = %v, want ErrTooManyRedirects", err)
	}
	f = New(Config{Policy: allowLoopback1(), Resolver: noDNS(), MaxRedirects: -1})
	if _, err := f.Fetch(t.Context(), srv.URL+"/hop/1/final.bin", 1<<20); !errors.Is(err, ErrTooManyRedirects) {
		t.Errorf("1 redirect, none allowed: err = %v, want ErrTooManyRedirects", err)
	}
}

func TestFetchRedirectScheme(t *testing.T) {
	for _, to := range []string{"ftp://x/", "file:///etc/passwd", "gopher://127.0.0.1/"} {
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", to)
			w.WriteHeader(http.StatusFound)
		}))
		f := New(Config{Policy: allowLoopback1(), Resolver: noDNS()})
		if _, err := f.Fetch(t.Context(), srv.URL+"/", 1000); !errors.Is(err, ErrBadURL) {
			t.Errorf("redirect to %s: err = %v, want ErrBadURL", to, err)
		}
	}
}

// TestFetchRefusesLoopback fetches the test servers themselves under the
// default policy: every fetch must be refused before connecting.
func TestFetchRefusesLoopback(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached the server: %s", r.URL)
	})
	srv := newServer(t, handler)
	port := srv.port()

	port6 := port
	srv6 := newServerOn(t, "[::1]:0", handler)
	if srv6 != nil {
		port6 = srv6.port()
	} else {
		t.Log("no IPv6 loopback; checking refusal of [::1] without a listener")
	}

	f := New(Config{Resolver: noDNS()})
	urls := []string{
		"http://127.0.0.1:" + port + "/",
		"http://localhost:" + port + "/",
		"http://LOCALHOST:" + port + "/",
		"http://[::1]:" + port6 + "/",
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://[::ffff:7f00:1]:" + port + "/",
		"http://0x7f.1:" + port + "/",
		"http://0x7f000001:" + port + "/",
		"http://2130706433:" + port + "/",
		"http://017700000001:" + port + "/",
		"http://0177.0.0.1:" + port + "/",
		"http://127.1:" + port + "/",
		"http://127.000.000.001:" + port + "/",
		"http://127.0.0.1.:" + port + "/",
		"https://127.0.0.1:" + port + "/",
		"http://\u2460\u2461\u2466.0.0.1:" + port + "/",                // IDNA maps circled digits to 127
		"http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:" + port + "/", // and fullwidth ones
	}
	for _, u := range urls {
		resp, err := f.Fetch(t.Context(), u, 1000)
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, ErrDenied) {
			t.Errorf("Fetch(%s) = %v, want ErrDenied", u, err)
		}
	}

	// A public-looking name that resolves to loopback.
	f = New(Config{LookupIP: lookup(map[string][]string{
		"public.example": {"127.0.0.1"},
		"dual.example":   {"::1", "127.0.0.1"},
	})})
	for _, h := range []string{"public.example", "dual.example"} {
		u := "http://" + h + ":" + port + "/"
		_, err := f.Fetch(t.Context(), u, 1000)
		if !errors.Is(err, ErrDenied) {
			t.Errorf("Fetch(%s) = %v, want ErrDenied", u, err)
		} else if !strings.Contains(err.Error(), h) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Fetch(%s) error %q does not name the host and reason", u, err)
		}
	}

	if n := srv.accepts(); n != 0 {
		t.Errorf("server accepted %d connections, want 0", n)
	}
	if srv6 != nil && srv6.accepts() != 0 {
		t.Errorf("IPv6 server accepted %d connections, want 0", srv6.accepts())
	}
}

// TestFetchRedirectRefused follows a redirect from a permitted server to
// loopback addresses the policy does not permit.
func TestFetchRedirectRefused(t *testing.T) {
	target := newServerOn(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached the refused server: %s", r.URL)
	}))
	port := "9" // nothing listens; the fetch must be refused anyway
	if target != nil {
		port = target.port()
	} else {
		t.Log("cannot listen on 127.0.0.2; checking refusal without a listener")
	}

	for _, to := range []string{
		"http://127.0.0.2:" + port + "/",      // caught by the redirect check
		"http://rebind.example:" + port + "/", // caught by the dialer
		"http://[::1]:" + port + "/",
	} {
		from := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, to, http.StatusFound)
		}))
		f := New(Config{
			Policy:   allowLoopback1(),
			LookupIP: lookup(map[string][]string{"rebind.example": {"127.0.0.2"}}),
		})
		_, err := f.Fetch(t.Context(), from.URL+"/", 1000)
		if !errors.Is(err, ErrDenied) {
			t.Errorf("redirect to %s: err = %v, want ErrDenied", to, err)
		}
		if from.accepts() == 0 {
			t.Errorf("redirect to %s: the permitted server saw no connection", to)
		}
	}
	if target != nil && target.accepts() != 0 {
		t.Errorf("refused server accepted %d connections, want 0", target.accepts())
	}
}

// TestFetchDeniedNeverDials checks that denied addresses never reach the
// raw dialer.
func TestFetchDeniedNeverDials(t *testing.T) {
	f := New(Config{
		Dial: forbidDial(t),
		LookupIP: lookup(map[string][]string{
			"private.example":  {"10.0.0.5"},
			"metadata.example": {"169.254.169.254"},
			"mixed.example":    {"fd00::1", "192.168.0.1", "::ffff:10.0.0.1"},
		}),
	})
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/",
		"http://172.16.0.1/",
		"http://192.168.1.1/",
		"http://100.64.0.1/",
		"http://0.0.0.0/",
		"http://[::]/",
		"http://[fd00::1]/",
		"http://[fe80::1%25eth0]/",
		"http://[ff02::1]/",
		"http://[::ffff:10.0.0.1]/",
		"http://[::ffff:169.254.169.254]/",
		"http://[64:ff9b::a9fe:a9fe]/",
		"http://[2002:a9fe:a9fe::]/",
		"http://224.0.0.1/",
		"http://255.255.255.255/",
		"http://0xa9fea9fe/",
		"http://169.254.43518/",
		"http://012.0.0.1/",
		"https://10.0.0.1:8443/",
		"http://private.example/",
		"http://metadata.example/",
		"http://mixed.example:8080/",
	} {
		_, err := f.Fetch(t.Context(), u, 1000)
		if !errors.Is(err, ErrDenied) {
			t.Errorf("Fetch(%s) = %v, want ErrDenied", u, err)
		}
	}
}

// TestDialDenies calls the dialer directly, bypassing the URL checks, as
// the transport does for every connection.
func TestDialDenies(t *testing.T) {
	f := New(Config{Dial: forbidDial(t), LookupIP: lookup(map[string][]string{"private.example": {"10.0.0.5"}})})
	for _, addr := range []string{
		"169.254.169.254:80", "10.0.0.1:80", "[fd00::1]:80", "[ff02::1]:80",
		"[::ffff:10.0.0.1]:80", "224.0.0.1:80", "0x7f.1:80", "2130706433:80", "private.example:80",
	} {
		c, err := f.dial(t.Context(), "tcp", addr)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, ErrDenied) {
			t.Errorf("dial(%s) = %v, want ErrDenied", addr, err)
		}
	}
}

// TestDialOnlyAllowed checks that of a host's addresses only the allowed
// ones are dialled, in order.
func TestDialOnlyAllowed(t *testing.T) {
	data := pattern(10)
	srv := newServer(t, serve(data, true))
	port := srv.port()
	var mu sync.Mutex
	var dialled []string
	f := New(Config{
		Policy: Policy{Allow: []netip.Prefix{
			netip.MustParsePrefix("127.0.0.1/32"),
			netip.MustParsePrefix("127.0.0.3/32"),
		}},
		LookupIP: lookup(map[string][]string{"multi.example": {"10.0.0.1", "::1", "127.0.0.3", "169.254.169.254", "127.0.0.1"}}),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialled = append(dialled, addr)
			mu.Unlock()
			switch addr {
			case "127.0.0.3:" + port:
				return nil, errors.New("test: refused")
			case "127.0.0.1:" + port:
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
			t.Errorf("dialled %s", addr)
			return nil, errors.New("test: dial forbidden")
		},
	})
	resp, err := f.Fetch(t.Context(), "http://multi.example:"+port+"/x", 100)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, %v", len(got), err)
	}
	want := []string{"127.0.0.3:" + port, "127.0.0.1:" + port}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(dialled) != fmt.Sprint(want) {
		t.Errorf("dialled %v, want %v", dialled, want)
	}
}

func TestFetchBadURL(t *testing.T) {
	f := New(Config{Dial: forbidDial(t), Resolver: noDNS()})
	for _, u := range []string{
		"ftp://x/",
		"file:///etc/passwd",
		"http:///path",
		"not a url",
		"",
		"//example.com/x",
		"http://[::1",
		"http:opaque",
		"javascript:alert(1)",
		"gopher://127.0.0.1/",
	} {
		_, err := f.Fetch(t.Context(), u, 1000)
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("Fetch(%q) = %v, want ErrBadURL", u, err)
		}
	}
}

func TestFetchTooLarge(t *testing.T) {
	data := pattern(2000)
	for _, withLength := range []bool{true, false} {
		srv := newServer(t, serve(data, withLength))
		f := New(Config{Policy: allowLoopback1(), Resolver: noDNS()})
		resp, err := f.Fetch(t.Context(), srv.URL+"/big", 1000)
		if withLength {
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("with Content-Length: err = %v, want ErrTooLarge", err)
			}
			if resp != nil {
				t.Errorf("with Content-Length: got a response")
			}
			continue
		}
		if err != nil {
			t.Fatalf("without Content-Length: %v", err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("without Content-Length: read err = %v, want ErrTooLarge", err)
		}
		if !bytes.Equal(got, data[:1000]) {
			t.Errorf("without Content-Length: read %d bytes before the error, want the first 1000", len(got))
		}
		if n, err := resp.Body.Read(make([]byte, 10)); n != 0 || !errors.Is(err, ErrTooLarge) {
			t.Errorf("read after the limit = %d, %v", n, err)
		}
	}
}

func TestFetchStatus(t *testing.T) {
	srv := newServer(t, http.NotFoundHandler())
	f := New(Config{Policy: allowLoopback1(), Resolver: noDNS()})
	_, err := f.Fetch(t.Context(), srv.URL+"/missing", 1000)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("err = %v, want a 404 *StatusError", err)
	}
	if got, want := err.Error(), "remote server answered 404 Not Found"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

func TestFetchTimeout(t *testing.T) {
	slowHeaders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	slowBody := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("some bytes"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("%s: err = %v, want a timeout", what, err)
		}
	}
	f := New(Config{Policy: allowLoopback1(), Resolver: noDNS(), Timeout: 200 * time.Millisecond})

	srv := newServer(t, slowHeaders)
	start := time.Now()
	_, err := f.Fetch(t.Context(), srv.URL+"/", 1000)
	check("slow headers", err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("slow headers: took %v", d)
	}

	srv = newServer(t, slowBody)
	resp, err := f.Fetch(t.Context(), srv.URL+"/", 1000)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	check("slow body", err)

	// The connect timeout covers a dial that hangs.
	f = New(Config{
		ConnectTimeout: 100 * time.Millisecond,
		LookupIP:       lookup(map[string][]string{"hang.example": {"93.184.216.34"}}),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			<-ctx.Done() // never touches the network
			return nil, ctx.Err()
		},
	})
	_, err = f.Fetch(t.Context(), "http://hang.example/", 1000)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hanging dial: err = %v, want DeadlineExceeded", err)
	}
}

func TestFetchCanceled(t *testing.T) {
	srv := newServer(t, serve(pattern(10), true))
	f := New(Config{Policy: allowLoopback1(), Resolver: noDNS()})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.Fetch(ctx, srv.URL+"/", 1000); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
