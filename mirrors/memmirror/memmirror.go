// Package memmirror implements a mirrors.Mirror in memory, for tests of the
// code above mirrors. It passes the same conformance suite as the real
// mirrors, and counts the calls made to it.
package memmirror

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/acestash/acestash/mirrors"
)

// Mirror keeps objects and uploads in maps. It is safe for concurrent use,
// and stores the chunks of one upload concurrently, as S3 stores parts.
type Mirror struct {
	mu      sync.Mutex
	objects map[string]object
	uploads map[string]map[int]chunk // by upload id, then chunk number
	begun   map[string]begun         // by upload id
	calls   map[string]int           // by method name
}

// begun is an upload in progress and when it began.
type begun struct {
	up mirrors.Upload
	at time.Time
}

// chunk is a chunk of an upload and where in the object it goes.
type chunk struct {
	off  int64
	data []byte
}

type object struct {
	data     []byte
	modified time.Time
}

var (
	_ mirrors.Mirror     = (*Mirror)(nil)
	_ mirrors.Concurrent = (*Mirror)(nil)
	_ mirrors.Lister     = (*Mirror)(nil)
)

// New returns an empty mirror.
func New() *Mirror {
	return &Mirror{objects: map[string]object{}, uploads: map[string]map[int]chunk{}, calls: map[string]int{},
		begun: map[string]begun{}}
}

// Calls returns how many times the method (for example "Put") was called.
func (m *Mirror) Calls(method string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[method]
}

// Keys returns the keys of the objects held.
func (m *Mirror) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.objects {
		keys = append(keys, k)
	}
	return keys
}

// Uploads returns how many uploads are in progress.
func (m *Mirror) Uploads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.uploads)
}

func (m *Mirror) count(method string) {
	m.mu.Lock()
	m.calls[method]++
	m.mu.Unlock()
}

// read returns exactly size bytes of r.
func read(ctx context.Context, r io.Reader, size int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("memmirror: negative size %d", size)
	}
	var b bytes.Buffer
	n, err := io.CopyN(&b, r, size)
	if err == io.EOF {
		return nil, fmt.Errorf("memmirror: read %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return nil, fmt.Errorf("memmirror: %w", err)
	}
	return b.Bytes(), nil
}

func (m *Mirror) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	m.count("Put")
	data, err := read(ctx, r, size)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[key] = object{data, time.Now()}
	return nil
}

func (m *Mirror) Begin(ctx context.Context, key string) (mirrors.Upload, error) {
	m.count("Begin")
	if err := ctx.Err(); err != nil {
		return mirrors.Upload{}, err
	}
	up := mirrors.Upload{Key: key, ID: uuid.NewString()}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uploads[up.ID] = map[int]chunk{}
	m.begun[up.ID] = begun{up, time.Now()}
	return up, nil
}

func (m *Mirror) PutPart(ctx context.Context, up mirrors.Upload, prev mirrors.Part, r io.Reader, size int64) (mirrors.Part, error) {
	m.count("PutPart")
	data, err := read(ctx, r, size)
	if err != nil {
		return mirrors.Part{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	chunks, ok := m.uploads[up.ID]
	if !ok {
		return mirrors.Part{}, fmt.Errorf("memmirror: upload %s: %w", up.ID, mirrors.ErrNotFound)
	}
	if prev.N < 0 || prev.Size < 0 {
		return mirrors.Part{}, fmt.Errorf("memmirror: upload %s: bad Part %+v", up.ID, prev)
	}
	chunks[prev.N+1] = chunk{prev.Size, data}
	return mirrors.Part{N: prev.N + 1, Size: prev.Size + size}, nil
}

// Next always knows the Part a chunk will leave.
func (m *Mirror) Next(prev mirrors.Part, size int64) (mirrors.Part, bool) {
	return mirrors.Part{N: prev.N + 1, Size: prev.Size + size}, true
}

// Settle returns the last Part; a memmirror Part holds nothing more.
func (m *Mirror) Settle(parts []mirrors.Part) mirrors.Part { return parts[len(parts)-1] }

// Complete joins chunks 1..last.N, which must follow one another.
func (m *Mirror) Complete(ctx context.Context, up mirrors.Upload, last mirrors.Part) error {
	m.count("Complete")
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	chunks, ok := m.uploads[up.ID]
	if !ok {
		return fmt.Errorf("memmirror: upload %s: %w", up.ID, mirrors.ErrNotFound)
	}
	var data []byte
	for n := 1; n <= last.N; n++ {
		c, ok := chunks[n]
		if !ok || c.off != int64(len(data)) {
			return fmt.Errorf("memmirror: upload %s: chunk %d missing or out of place", up.ID, n)
		}
		data = append(data, c.data...)
	}
	if int64(len(data)) != last.Size {
		return fmt.Errorf("memmirror: upload %s holds %d bytes, want %d", up.ID, len(data), last.Size)
	}
	m.objects[up.Key] = object{data, time.Now()}
	m.forget(up.ID)
	return nil
}

func (m *Mirror) Abort(ctx context.Context, up mirrors.Upload) error {
	m.count("Abort")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forget(up.ID)
	return nil
}

// forget drops an upload; the caller holds mu.
func (m *Mirror) forget(id string) {
	delete(m.uploads, id)
	delete(m.begun, id)
}

// ListObjects lists the objects under prefix.
func (m *Mirror) ListObjects(ctx context.Context, prefix string, fn func(key string, info mirrors.Info) error) error {
	m.count("ListObjects")
	m.mu.Lock()
	type entry struct {
		key  string
		info mirrors.Info
	}
	var list []entry
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) {
			list = append(list, entry{k, mirrors.Info{Size: int64(len(o.data)), Modified: o.modified}})
		}
	}
	m.mu.Unlock()
	for _, e := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.key, e.info); err != nil {
			return err
		}
	}
	return nil
}

// ListUploads lists the uploads in progress under prefix.
func (m *Mirror) ListUploads(ctx context.Context, prefix string, fn func(up mirrors.Upload, began time.Time) error) error {
	m.count("ListUploads")
	m.mu.Lock()
	var list []begun
	for _, b := range m.begun {
		if strings.HasPrefix(b.up.Key, prefix) {
			list = append(list, b)
		}
	}
	m.mu.Unlock()
	for _, b := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(b.up, b.at); err != nil {
			return err
		}
	}
	return nil
}

// Age moves the modification time of the object, or the start of the
// upload with that id, d into the past, as time passing would.
func (m *Mirror) Age(keyOrID string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[keyOrID]; ok {
		o.modified = o.modified.Add(-d)
		m.objects[keyOrID] = o
	}
	if b, ok := m.begun[keyOrID]; ok {
		b.at = b.at.Add(-d)
		m.begun[keyOrID] = b
	}
}

func (m *Mirror) Open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	m.count("Open")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	o, ok := m.objects[key]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("memmirror: open %q: %w", key, mirrors.ErrNotFound)
	}
	if off < 0 || off > int64(len(o.data)) {
		return nil, fmt.Errorf("memmirror: open %q: offset %d outside 0..%d", key, off, len(o.data))
	}
	end := int64(len(o.data))
	if length >= 0 {
		end = min(end, off+length)
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), nil
}

func (m *Mirror) Stat(ctx context.Context, key string) (mirrors.Info, error) {
	m.count("Stat")
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return mirrors.Info{}, fmt.Errorf("memmirror: stat %q: %w", key, mirrors.ErrNotFound)
	}
	return mirrors.Info{Size: int64(len(o.data)), Modified: o.modified}, nil
}

func (m *Mirror) Delete(ctx context.Context, key string) error {
	m.count("Delete")
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objects, key)
	return nil
}

// Ping reports whether ctx is still alive.
func (m *Mirror) Ping(ctx context.Context) error { return ctx.Err() }
