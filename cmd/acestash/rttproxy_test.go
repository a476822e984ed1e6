package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acestash/acestash/store/redisstore/redistest"
)

// rttProxy is a TCP proxy between a Redis client and a Redis server that
// counts the client's round trips. It parses RESP in both directions, so it
// knows how many commands each connection has sent and how many replies it
// has received: a round trip starts when a client sends bytes while it
// waits for no reply (the first send on a connection included); bytes sent
// while replies are outstanding (the rest of a pipeline or a MULTI block)
// belong to the round trip in progress, however TCP splits them.
//
// Counting happens only inside a window (openWindow ... closeWindow). Each connection's
// leading round trips made of connection set-up commands only (HELLO, AUTH,
// SELECT, READONLY, CLIENT: what go-redis sends on every dial) are marked
// as handshakes and counted apart, as are the dials.
//
// The proxy's goroutines never touch the test: they keep protocol errors,
// which the test goroutine reports when a window closes and when the test
// ends.
type rttProxy struct {
	Addr   string // where clients connect: host:port
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu     sync.Mutex
	quiet  *sync.Cond // broadcast whenever a connection may have become idle
	conns  map[*rttConn]bool
	nextID int
	win    *rttWindow // nil outside a window
	errs   []error
	closed bool
}

// rttConn is one proxied connection and what its client has said.
type rttConn struct {
	id             int
	client, server net.Conn
	cmdBuf         []byte // client bytes not yet a whole command
	replyBuf       []byte // server bytes not yet a whole reply
	sent, replied  int    // whole commands sent, replies received
	ready          bool   // the client has sent a command other than set-up
	broken         bool   // unparseable traffic: no longer counted
	trip           *roundTrip
	trips          int
}

// roundTrip is one round trip of one connection.
type roundTrip struct {
	conn, n   int      // connection id and the round trip's number on it
	cmds      []string // the commands, as rttCommand prints them
	handshake bool     // connection set-up only
}

// rttWindow is what the proxy saw between open and close.
type rttWindow struct {
	dials  int
	trips  []*roundTrip
	closed time.Time // when counting stopped
}

// rttVerbose reports whether ACESTASH_RTT_VERBOSE=1 asks the tests to log
// every round trip a window saw, with its commands.
func rttVerbose() bool { return os.Getenv("ACESTASH_RTT_VERBOSE") == "1" }

// setupCommands are what go-redis sends on a new connection before using it.
var setupCommands = map[string]bool{"HELLO": true, "AUTH": true, "SELECT": true, "READONLY": true, "CLIENT": true}

// startRTTProxy starts a proxy to the Redis at target (host:port); it stops
// when the test ends.
func startRTTProxy(t testing.TB, target string) *rttProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rttProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[*rttConn]bool{}}
	p.quiet = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		p.close()
		for _, err := range p.takeErrs() {
			t.Errorf("redis proxy: %v", err)
		}
	})
	return p
}

// close stops accepting, closes every connection and waits for the
// proxy's goroutines. It may be called more than once.
func (p *rttProxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

func (p *rttProxy) fail(err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

func (p *rttProxy) takeErrs() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := p.errs
	p.errs = nil
	return errs
}

func (p *rttProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			p.fail(fmt.Errorf("dial %s: %v", p.target, err))
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			server.Close()
			continue
		}
		p.nextID++
		c := &rttConn{id: p.nextID, client: client, server: server}
		p.conns[c] = true
		if p.win != nil {
			p.win.dials++
		}
		p.mu.Unlock()
		var both sync.WaitGroup
		both.Go(func() { p.pump(c, client, server, p.fromClient) })
		both.Go(func() { p.pump(c, server, client, p.fromServer) })
		p.wg.Go(func() {
			both.Wait()
			p.mu.Lock()
			delete(p.conns, c)
			p.quiet.Broadcast()
			p.mu.Unlock()
		})
	}
}

// pump copies src to dst, letting note see every read before it is
// forwarded, so the counts are up to date before the other side can react.
func (p *rttProxy) pump(c *rttConn, src, dst net.Conn, note func(*rttConn, []byte)) {
	defer func() {
		src.Close()
		dst.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			note(c, buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// fromClient counts the client's bytes: a new round trip if the client
// waited for nothing, and every whole command in the round trip.
func (p *rttProxy) fromClient(c *rttConn, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.broken {
		return
	}
	if len(c.cmdBuf) == 0 && c.sent == c.replied {
		c.trips++
		c.trip = &roundTrip{conn: c.id, n: c.trips, handshake: !c.ready}
		if p.win != nil {
			p.win.trips = append(p.win.trips, c.trip)
		}
	}
	c.cmdBuf = append(c.cmdBuf, b...)
	for len(c.cmdBuf) > 0 {
		end, err := respEnd(c.cmdBuf, 0)
		if err == nil && end > 0 && c.cmdBuf[0] != '*' {
			err = fmt.Errorf("a command is not an array: %q", c.cmdBuf[:min(end, 40)])
		}
		var args [][]byte
		if err == nil && end > 0 {
			args, err = respArray(c.cmdBuf[:end])
		}
		if err != nil {
			p.breakConn(c, fmt.Errorf("connection %d, client: %v", c.id, err))
			return
		}
		if end < 0 {
			break
		}
		c.sent++
		cmd := rttCommand(args)
		c.trip.cmds = append(c.trip.cmds, cmd)
		if len(args) == 0 || !setupCommands[strings.ToUpper(string(args[0]))] {
			c.trip.handshake, c.ready = false, true
		}
		c.cmdBuf = c.cmdBuf[end:]
	}
	if len(c.cmdBuf) == 0 {
		c.cmdBuf = nil
	}
}

// fromServer counts the replies in the server's bytes.
func (p *rttProxy) fromServer(c *rttConn, b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.broken {
		return
	}
	c.replyBuf = append(c.replyBuf, b...)
	for len(c.replyBuf) > 0 {
		end, err := respEnd(c.replyBuf, 0)
		if err != nil {
			p.breakConn(c, fmt.Errorf("connection %d, server: %v", c.id, err))
			return
		}
		if end < 0 {
			break
		}
		// Push messages and attributes (RESP3) are not replies.
		if k := c.replyBuf[0]; k != '>' && k != '|' {
			c.replied++
		}
		c.replyBuf = c.replyBuf[end:]
	}
	if len(c.replyBuf) == 0 {
		c.replyBuf = nil
	}
	if c.replied > c.sent {
		p.breakConn(c, fmt.Errorf("connection %d: %d replies to %d commands", c.id, c.replied, c.sent))
		return
	}
	p.quiet.Broadcast()
}

// breakConn stops counting a connection whose traffic cannot be followed.
func (p *rttProxy) breakConn(c *rttConn, err error) {
	c.broken = true
	p.errs = append(p.errs, err)
	p.quiet.Broadcast()
}

// idle reports whether no connection waits for a reply or is half way
// through sending a command. The caller holds p.mu.
func (p *rttProxy) idle() bool {
	for c := range p.conns {
		if !c.broken && (len(c.cmdBuf) > 0 || c.sent != c.replied) {
			return false
		}
	}
	return true
}

// settle waits, without polling, until every connection is idle.
func (p *rttProxy) settle() error {
	const limit = 30 * time.Second
	deadline := time.Now().Add(limit)
	wake := time.AfterFunc(limit, func() {
		p.mu.Lock()
		p.quiet.Broadcast()
		p.mu.Unlock()
	})
	defer wake.Stop()
	for !p.idle() {
		if time.Now().After(deadline) {
			return fmt.Errorf("redis connections still wait for replies after %v", limit)
		}
		p.quiet.Wait()
	}
	return nil
}

// openWindow starts a window once nothing is in flight.
func (p *rttProxy) openWindow(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	err := p.settle()
	if err == nil && p.win != nil {
		err = errors.New("redis proxy: a window is already open")
	}
	if err == nil {
		p.win = &rttWindow{}
	}
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	p.checkErrs(t)
}

// closeWindow ends the window once every command sent in it has its reply, and
// returns what it saw.
func (p *rttProxy) closeWindow(t testing.TB) *rttWindow {
	t.Helper()
	p.mu.Lock()
	err := p.settle()
	w := p.win
	p.win = nil
	if w != nil {
		w.closed = time.Now()
		// Copy the round trips: they belong to connections that live on.
		for i, rt := range w.trips {
			c := *rt
			c.cmds = slices.Clone(rt.cmds)
			w.trips[i] = &c
		}
	}
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if w == nil {
		t.Fatal("redis proxy: close without open")
	}
	p.checkErrs(t)
	return w
}

func (p *rttProxy) checkErrs(t testing.TB) {
	t.Helper()
	if errs := p.takeErrs(); len(errs) > 0 {
		t.Fatalf("redis proxy: %v", errors.Join(errs...))
	}
}

// count is the number of round trips, not counting handshakes.
func (w *rttWindow) count() int {
	n := 0
	for _, rt := range w.trips {
		if !rt.handshake {
			n++
		}
	}
	return n
}

// handshakes is the number of round trips new connections spent on set-up.
func (w *rttWindow) handshakes() int { return len(w.trips) - w.count() }

// String lists the round trips, one a line, with their commands.
func (w *rttWindow) String() string {
	var b strings.Builder
	i := 0
	for _, rt := range w.trips {
		label := "handshake"
		if !rt.handshake {
			i++
			label = strconv.Itoa(i)
		}
		cmds := rt.cmds
		const most = 12
		if len(cmds) > most {
			cmds = append(slices.Clip(cmds[:most]), fmt.Sprintf("… (%d commands)", len(rt.cmds)))
		}
		fmt.Fprintf(&b, "\n  %-9s conn %d #%d: %s", label, rt.conn, rt.n, strings.Join(cmds, " | "))
	}
	return b.String()
}

// respEnd returns the end of the RESP2/RESP3 value that starts at b[i], or
// -1 if b holds only part of it.
func respEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return -1, nil
	}
	eol := bytes.Index(b[i:], []byte("\r\n"))
	if eol < 0 {
		return -1, nil
	}
	kind, head, next := b[i], string(b[i+1:i+eol]), i+eol+2
	switch kind {
	case '+', '-', ':', '_', '#', ',', '(':
		return next, nil
	case '$', '!', '=', '*', '~', '>', '%', '|':
	default:
		return 0, fmt.Errorf("not RESP: %q", b[i:min(len(b), i+40)])
	}
	n, err := strconv.Atoi(head)
	if err != nil {
		return 0, fmt.Errorf("bad RESP length %q", head)
	}
	if n < 0 {
		return next, nil // null
	}
	switch kind {
	case '$', '!', '=':
		if len(b) < next+n+2 {
			return -1, nil
		}
		return next + n + 2, nil
	case '%', '|':
		n *= 2
	}
	for range n {
		if next, err = respEnd(b, next); next < 0 || err != nil {
			return next, err
		}
	}
	return next, nil
}

// respArray returns the elements of a whole RESP array of bulk strings.
func respArray(b []byte) ([][]byte, error) {
	eol := bytes.Index(b, []byte("\r\n"))
	n, err := strconv.Atoi(string(b[1:eol]))
	if err != nil {
		return nil, err
	}
	var args [][]byte
	pos := eol + 2
	for range n {
		if b[pos] != '$' {
			return nil, fmt.Errorf("a command argument is not a bulk string: %q", b[pos:min(len(b), pos+40)])
		}
		eol := bytes.Index(b[pos:], []byte("\r\n"))
		l, err := strconv.Atoi(string(b[pos+1 : pos+eol]))
		if err != nil || l < 0 {
			return nil, fmt.Errorf("bad argument length %q", b[pos+1:pos+eol])
		}
		start := pos + eol + 2
		args = append(args, b[start:start+l])
		pos = start + l + 2
	}
	return args, nil
}

// scriptNames maps the SHA-1 of every Lua script a proxy has seen sent
// with EVAL or SCRIPT LOAD to a name listing the commands it calls, so that
// EVALSHA reads as more than a hash. SHA-1 names the script, so one map
// serves every proxy.
var scriptNames sync.Map

var scriptCalls = regexp.MustCompile(`redis\.p?call\(\s*['"]([A-Za-z]+)['"]`)

func scriptName(src []byte) string {
	var calls []string
	for _, m := range scriptCalls.FindAllSubmatch(src, -1) {
		if c := strings.ToUpper(string(m[1])); !slices.Contains(calls, c) {
			calls = append(calls, c)
		}
	}
	sum := sha1.Sum(src)
	name := "script(" + strings.Join(calls, ",") + ")"
	scriptNames.Store(hex.EncodeToString(sum[:]), name)
	return name
}

// rttCommand prints a command short: its name and first arguments, for a
// script its name and keys.
func rttCommand(args [][]byte) string {
	if len(args) == 0 {
		return "(empty)"
	}
	name := strings.ToUpper(string(args[0]))
	out := []string{name}
	rest := args[1:]
	switch name {
	case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO":
		if len(rest) < 2 {
			break
		}
		if strings.HasPrefix(name, "EVALSHA") {
			s, ok := scriptNames.Load(strings.ToLower(string(rest[0])))
			if !ok {
				s = "sha:" + string(rest[0][:min(8, len(rest[0]))])
			}
			out = append(out, s.(string))
		} else {
			out = append(out, scriptName(rest[0]))
		}
		nkeys, _ := strconv.Atoi(string(rest[1]))
		rest = rest[2:min(len(rest), 2+nkeys)]
	case "SCRIPT":
		if len(rest) == 2 && strings.EqualFold(string(rest[0]), "LOAD") {
			return "SCRIPT LOAD " + scriptName(rest[1])
		}
	}
	const shown, width = 3, 64
	for i, a := range rest {
		if i == shown {
			out = append(out, fmt.Sprintf("(+%d)", len(rest)-shown))
			break
		}
		s := string(a)
		if len(s) > width {
			s = s[:width] + "…"
		}
		if strings.ContainsAny(s, " \t\r\n\"") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0xfffd }) {
			s = strconv.Quote(s)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestRTTProxy checks the proxy's counting against a real Redis with
// go-redis: one round trip per command sent alone, per pipeline and per
// MULTI block however large, two for a script Redis does not hold yet
// (EVALSHA, then EVAL), and a new connection's set-up counted apart (the
// first command dials; go-redis may dial again for pipelines).
func TestRTTProxy(t *testing.T) {
	r := redistest.Start(t)
	p := startRTTProxy(t, r.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: p.Addr, PoolSize: 1})
	t.Cleanup(func() { rdb.Close() })
	ctx := t.Context()
	big := strings.Repeat("x", 1<<20)
	script := redis.NewScript(`return redis.call('GET', KEYS[1])`)
	for _, c := range []struct {
		name         string
		trips, dials int
		run          func() error
	}{
		{"first command", 1, 1, func() error { return rdb.Ping(ctx).Err() }},
		{"two commands", 2, 0, func() error {
			if err := rdb.Set(ctx, "a", "1", 0).Err(); err != nil {
				return err
			}
			return rdb.Get(ctx, "a").Err()
		}},
		{"pipeline of 200 KB", 1, 0, func() error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range 200 {
					p.Set(ctx, fmt.Sprint("k", i), big[:1000], 0)
				}
				return nil
			})
			return err
		}},
		{"MULTI block", 1, 0, func() error {
			_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Incr(ctx, "n")
				p.Set(ctx, "b", big, 0)
				return nil
			})
			return err
		}},
		{"1 MiB reply", 1, 0, func() error { return rdb.Get(ctx, "b").Err() }},
		{"new script", 2, 0, func() error { return script.Run(ctx, rdb, []string{"a"}).Err() }},
		{"known script", 1, 0, func() error { return script.Run(ctx, rdb, []string{"a"}).Err() }},
	} {
		p.openWindow(t)
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		w := p.closeWindow(t)
		if w.count() != c.trips || w.dials < c.dials || (w.dials == 0) != (w.handshakes() == 0) {
			t.Errorf("%s: %d round trips, %d dials, %d handshake round trips; want %d, at least %d, and some exactly when there is a dial:%s",
				c.name, w.count(), w.dials, w.handshakes(), c.trips, c.dials, w)
		}
		if rttVerbose() {
			t.Logf("%s: %d round trips, %d dials:%s", c.name, w.count(), w.dials, w)
		}
		if c.name == "new script" && !strings.Contains(w.String(), "EVAL script(GET) a") {
			t.Errorf("%s: the script is not named:%s", c.name, w)
		}
	}
}
