// Package remote fetches files from URLs given by API clients, for the
// MirrorAce upload/remote call, without letting those clients reach
// addresses they should not (SSRF): loopback, private networks, cloud
// metadata services and the like.
//
// Every connection, including every redirect hop, is dialled by a dialer
// that resolves the host itself, checks each address with a Policy and
// dials only addresses the Policy allows, so the address checked is the
// address dialled and DNS rebinding cannot slip past the check.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// Errors a Fetch can wrap.
var (
	// ErrTooLarge means the body is longer than the limit given to Fetch.
	ErrTooLarge = errors.New("remote file too large")
	// ErrTooManyRedirects means the server redirected more often than
	// Config.MaxRedirects allows.
	ErrTooManyRedirects = errors.New("too many redirects")
	// ErrBadURL means the URL, or a redirect's, is not an absolute http or
	// https URL with a host.
	ErrBadURL = errors.New("bad remote URL")
	// ErrNoHost means the URL's host name does not resolve to any address.
	ErrNoHost = errors.New("host name does not resolve")
)

// StatusError is a non-2xx answer from the remote server.
type StatusError struct {
	Code   int    // e.g. 404
	Status string // e.g. "404 Not Found"
}

func (e *StatusError) Error() string {
	s := e.Status
	if s == "" {
		s = fmt.Sprintf("%d %s", e.Code, http.StatusText(e.Code))
	}
	return "remote server answered " + s
}

// Defaults for the zero fields of a Config.
const (
	DefaultMaxRedirects   = 5
	DefaultConnectTimeout = 10 * time.Second
	DefaultHeaderTimeout  = time.Minute
	DefaultTimeout        = 6 * time.Hour
)

// Config configures a Fetcher. The zero Config is usable: it allows only
// public addresses and uses the defaults above.
type Config struct {
	Policy Policy

	// MaxRedirects is the most redirects a fetch follows; 0 means
	// DefaultMaxRedirects and a negative value means none.
	MaxRedirects int

	// ConnectTimeout bounds resolving a host and connecting to it, and
	// the TLS handshake; 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration

	// HeaderTimeout bounds the wait for the response headers after the
	// request is sent; 0 means DefaultHeaderTimeout.
	HeaderTimeout time.Duration

	// Timeout bounds the whole fetch, reading the body included; 0 means
	// DefaultTimeout.
	Timeout time.Duration

	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver *net.Resolver

	// LookupIP, if set, resolves host names instead of Resolver.
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)

	// Dial makes the raw connection to an address the Policy allowed;
	// addr is always a literal IP and port. nil means a net.Dialer with
	// ConnectTimeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Fetcher fetches remote files. It is safe for concurrent use.
type Fetcher struct {
	policy       Policy
	maxRedirects int
	connect      time.Duration
	timeout      time.Duration
	resolver     *net.Resolver
	lookup       func(ctx context.Context, host string) ([]netip.Addr, error)
	rawDial      func(ctx context.Context, network, addr string) (net.Conn, error)
	client       *http.Client
}

// New returns a Fetcher configured by cfg, zero fields taking their
// defaults.
func New(cfg Config) *Fetcher {
	f := &Fetcher{
		policy:       cfg.Policy,
		maxRedirects: cfg.MaxRedirects,
		connect:      cfg.ConnectTimeout,
		timeout:      cfg.Timeout,
		resolver:     cfg.Resolver,
		lookup:       cfg.LookupIP,
		rawDial:      cfg.Dial,
	}
	switch {
	case f.maxRedirects == 0:
		f.maxRedirects = DefaultMaxRedirects
	case f.maxRedirects < 0:
		f.maxRedirects = 0
	}
	if f.connect <= 0 {
		f.connect = DefaultConnectTimeout
	}
	header := cfg.HeaderTimeout
	if header <= 0 {
		header = DefaultHeaderTimeout
	}
	if f.timeout <= 0 {
		f.timeout = DefaultTimeout
	}
	if f.resolver == nil {
		f.resolver = net.DefaultResolver
	}
	if f.rawDial == nil {
		f.rawDial = (&net.Dialer{Timeout: f.connect}).DialContext
	}
	f.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // never the environment's proxies
			DialContext:            f.dial,
			TLSHandshakeTimeout:    f.connect,
			ResponseHeaderTimeout:  header,
			DisableCompression:     true, // store the bytes as served
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 1 << 20,
		},
		CheckRedirect: f.checkRedirect,
	}
	return f
}

// Response is a successful (2xx) answer whose body is still to be read.
type Response struct {
	// Body yields the body, at most the limit given to Fetch: reading
	// past it fails with an error wrapping ErrTooLarge. Reads fail once
	// the fetch times out. The caller must close it.
	Body io.ReadCloser
	// Size is the Content-Length, or -1 if unknown.
	Size int64
	// Name is the file name from Content-Disposition, else from the last
	// segment of the final URL's path, else ""; it never contains a path
	// separator or control character and is at most 255 bytes.
	Name string
	// Type is the Content-Type header.
	Type string
}

// Fetch GETs rawURL, following redirects, and returns the response with its
// body open. rawURL must be an absolute http or https URL with a host. A
// body known to be longer than max bytes fails with ErrTooLarge before it
// is read; max < 0 means no limit. A non-2xx answer is a *StatusError. Every
// address connected to is checked with the Policy; refusals wrap ErrDenied.
// The whole fetch, reading the body included, must finish within the
// Config's Timeout; when it does not, errors wrap context.DeadlineExceeded
// and say the fetch timed out.
func (f *Fetcher) Fetch(ctx context.Context, rawURL string, max int64) (*Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("remote: %w: %w", ErrBadURL, err)
	}
	if err := f.checkURL(u); err != nil {
		return nil, err
	}
	cause := fmt.Errorf("remote: fetch timed out after %v: %w", f.timeout, context.DeadlineExceeded)
	ctx, cancel := context.WithTimeoutCause(ctx, f.timeout, cause)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("remote: %w: %w", ErrBadURL, err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		err = ctxErr(ctx, err)
		cancel()
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		resp.Body.Close()
		cancel()
		return nil, &StatusError{Code: resp.StatusCode, Status: resp.Status}
	}
	if max >= 0 && resp.ContentLength > max {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("remote: file is %d bytes, more than %d: %w", resp.ContentLength, max, ErrTooLarge)
	}
	return &Response{
		Body: &body{rc: resp.Body, left: max, max: max, ctx: ctx, cancel: cancel},
		Size: resp.ContentLength,
		Name: fileName(resp.Header.Get("Content-Disposition"), resp.Request.URL),
		Type: resp.Header.Get("Content-Type"),
	}, nil
}

// checkURL refuses a URL that is not http or https with a host, and a host
// that is a literal address the Policy denies. The dialer checks again;
// this only refuses early, before any connection is attempted.
func (f *Fetcher) checkURL(u *url.URL) error {
	switch u.Scheme {
	case "http", "https":
	case "":
		return fmt.Errorf("remote: %w: %q is not an absolute URL", ErrBadURL, u.Redacted())
	default:
		return fmt.Errorf("remote: %w: scheme %q is not http or https", ErrBadURL, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("remote: %w: %q has no host", ErrBadURL, u.Redacted())
	}
	if a, ok := literal(host); ok {
		if err := f.policy.Check(a); err != nil {
			return withHost(err, host)
		}
	}
	return nil
}

// checkRedirect is the http.Client's CheckRedirect: it limits the number
// of hops and refuses a redirect to a URL Fetch itself would refuse.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > f.maxRedirects {
		return fmt.Errorf("remote: stopped after %d redirects: %w", f.maxRedirects, ErrTooManyRedirects)
	}
	return f.checkURL(req.URL)
}

// dial is the Transport's DialContext. It resolves the host of address,
// checks every address with the Policy, and dials the allowed ones in
// order until one connects. If none is allowed it returns the
// *DeniedError of the first.
func (f *Fetcher) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("remote: dial %s: %w", address, err)
	}
	cause := fmt.Errorf("remote: connecting to %q timed out after %v: %w", host, f.connect, context.DeadlineExceeded)
	ctx, cancel := context.WithTimeoutCause(ctx, f.connect, cause)
	defer cancel()
	addrs, err := f.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var allowed []netip.Addr
	var denied error
	for _, a := range addrs {
		if err := f.policy.Check(a); err != nil {
			if denied == nil {
				denied = withHost(err, host)
			}
			continue
		}
		allowed = append(allowed, a)
	}
	if len(allowed) == 0 {
		if denied != nil {
			return nil, denied
		}
		return nil, fmt.Errorf("remote: host %q: %w", host, ErrNoHost)
	}
	var errs []error
	for _, a := range allowed {
		c, err := f.rawDial(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, ctxErr(ctx, fmt.Errorf("remote: connecting to %q: %w", host, errors.Join(errs...)))
}

// resolve returns the addresses of host: itself if it is a literal, in any
// form inet_aton accepts, else what LookupIP or the Resolver answers.
func (f *Fetcher) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, ok := literal(host); ok {
		return []netip.Addr{a}, nil
	}
	var addrs []netip.Addr
	var err error
	if f.lookup != nil {
		addrs, err = f.lookup(ctx, host)
	} else {
		addrs, err = f.resolver.LookupNetIP(ctx, "ip", host)
	}
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("remote: resolving %q: %w: %w", host, ErrNoHost, err)
	}
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("remote: resolving %q: %w", host, err))
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap() // LookupNetIP can answer ::ffff:1.2.3.4 for an A record
	}
	return addrs, nil
}

// literal parses host as an IP address, either canonical or in one of the
// numeric IPv4 forms inet_aton accepts ("0x7f.1", "2130706433").
func literal(host string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, true
	}
	return parseLegacy4(host)
}

// withHost records host in err if it is a *DeniedError.
func withHost(err error, host string) error {
	var de *DeniedError
	if errors.As(err, &de) {
		c := *de
		c.Host = host
		return &c
	}
	return err
}

// ctxErr makes sure err says why, once ctx is done: err then also wraps
// the context's cause, which for the fetch timeout says it timed out and
// wraps context.DeadlineExceeded.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	if errors.Is(err, cause) {
		return err
	}
	return fmt.Errorf("%w (%w)", cause, err)
}

// body limits a response body to max bytes and ends the fetch's context
// when closed.
type body struct {
	rc     io.ReadCloser
	left   int64 // bytes still allowed; unused if max < 0
	max    int64
	err    error // sticky ErrTooLarge
	ctx    context.Context
	cancel context.CancelFunc
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.max >= 0 && int64(len(p))-1 > b.left {
		p = p[:b.left+1] // one byte more than allowed shows an overlong body
	}
	n, err := b.rc.Read(p)
	if b.max >= 0 {
		if int64(n) > b.left {
			n = int(b.left)
			b.left = 0
			b.err = fmt.Errorf("remote: file is more than %d bytes: %w", b.max, ErrTooLarge)
			return n, b.err
		}
		b.left -= int64(n)
	}
	if err != nil && err != io.EOF {
		err = ctxErr(b.ctx, err)
	}
	return n, err
}

// Close closes the body and releases the fetch's resources.
func (b *body) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}
