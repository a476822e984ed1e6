// Package fsmirror implements a mirrors.Mirror that keeps objects as files
// in a local directory.
//
// An object with key "a/b.txt" is the file dir/a/b.txt. An upload in
// progress is the directory dir/.uploads/<id> holding one file, "data",
// that grows chunk by chunk (and "key", the key it will be published under): a chunk is written at the offset its Part
// before says, after cutting off anything past it, so a retried chunk
// replaces the earlier try. Complete cuts the file to the last Part's size,
// syncs it and renames it over the object, so a reader sees either the old
// object or the whole new one, and no byte is copied twice. Keys whose
// first element is ".uploads" are reserved.
package fsmirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/acestash/acestash/mirrors"
)

// uploadsDir is the directory, under the mirror's root, that holds uploads
// in progress.
const uploadsDir = ".uploads"

// Mirror stores objects under a directory. It is safe for concurrent use,
// also by several processes sharing the directory.
type Mirror struct {
	dir string
}

var (
	_ mirrors.Mirror = (*Mirror)(nil)
	_ mirrors.Pinger = (*Mirror)(nil)
	_ mirrors.Lister = (*Mirror)(nil)
)

// New returns a mirror storing objects under dir, creating dir if needed.
func New(dir string) (*Mirror, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fsmirror: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, uploadsDir), 0o755); err != nil {
		return nil, fmt.Errorf("fsmirror: %w", err)
	}
	return &Mirror{dir: dir}, nil
}

// Ping checks that a file can be created in the directory.
func (m *Mirror) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsmirror: %w", err)
	}
	f, err := os.CreateTemp(filepath.Join(m.dir, uploadsDir), ".ping-*")
	if err != nil {
		return fmt.Errorf("fsmirror: ping: %w", err)
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("fsmirror: ping: %w", err)
	}
	return nil
}

// Begin starts an upload; its id names a new directory under .uploads.
func (m *Mirror) Begin(ctx context.Context, key string) (mirrors.Upload, error) {
	if _, err := m.objectPath(key); err != nil {
		return mirrors.Upload{}, err
	}
	if err := ctx.Err(); err != nil {
		return mirrors.Upload{}, fmt.Errorf("fsmirror: %w", err)
	}
	up := mirrors.Upload{Key: key, ID: uuid.NewString()}
	dir := m.uploadPath(up.ID)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return mirrors.Upload{}, fmt.Errorf("fsmirror: begin %q: %w", key, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err == nil {
		f.Close()
		err = os.WriteFile(filepath.Join(dir, keyFile), []byte(key), 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return mirrors.Upload{}, fmt.Errorf("fsmirror: begin %q: %w", key, err)
	}
	return up, nil
}

// dataFile is the name, in an upload's directory, of the file it grows;
// keyFile holds the key it will be published under.
const (
	dataFile = "data"
	keyFile  = "key"
)

// ListObjects walks the directory for the objects under prefix.
func (m *Mirror) ListObjects(ctx context.Context, prefix string, fn func(key string, info mirrors.Info) error) error {
	err := filepath.WalkDir(m.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while the walk went on
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(m.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Skip what cannot hold a key under prefix.
			if key == uploadsDir || key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(key, mirrors.Info{Size: info.Size(), Modified: info.ModTime()})
	})
	if err != nil {
		return fmt.Errorf("fsmirror: list objects: %w", err)
	}
	return nil
}

// ListUploads lists the upload directories whose key is under prefix;
// when an upload began is when its directory was made.
func (m *Mirror) ListUploads(ctx context.Context, prefix string, fn func(up mirrors.Upload, began time.Time) error) error {
	entries, err := os.ReadDir(filepath.Join(m.dir, uploadsDir))
	if err != nil {
		return fmt.Errorf("fsmirror: list uploads: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fsmirror: list uploads: %w", err)
		}
		if _, err := uuid.Parse(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		key, err := os.ReadFile(filepath.Join(m.uploadPath(e.Name()), keyFile))
		if err != nil || !strings.HasPrefix(string(key), prefix) {
			continue // gone meanwhile, or not begun by this version
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if err := fn(mirrors.Upload{Key: string(key), ID: e.Name()}, info.ModTime()); err != nil {
			return err
		}
	}
	return nil
}

// Put writes the object to a temporary file, syncs it and renames it into
// place.
func (m *Mirror) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	dst, err := m.objectPath(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("fsmirror: put %q: negative size %d", key, size)
	}
	f, err := os.CreateTemp(filepath.Join(m.dir, uploadsDir), ".put-*")
	if err != nil {
		return fmt.Errorf("fsmirror: put %q: %w", key, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	err = writeChunk(ctx, f, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = publish(f.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("fsmirror: put %q: %w", key, err)
	}
	return nil
}

// publish renames the file at src to dst, creating dst's directory, and
// makes the rename durable.
func publish(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// PutPart cuts the upload's data file to prev.Size, writes the chunk after
// it and syncs the file.
func (m *Mirror) PutPart(ctx context.Context, up mirrors.Upload, prev mirrors.Part, r io.Reader, size int64) (mirrors.Part, error) {
	dir, err := m.upload(up)
	if err != nil {
		return mirrors.Part{}, err
	}
	if prev.N < 0 || prev.Size < 0 || size < 0 {
		return mirrors.Part{}, fmt.Errorf("fsmirror: upload %s: bad chunk %d of %d bytes", up.ID, prev.N+1, size)
	}
	n := prev.N + 1
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_WRONLY, 0)
	if err != nil {
		return mirrors.Part{}, uploadErr(up, fmt.Errorf("chunk %d: %w", n, err))
	}
	err = appendAt(ctx, f, prev.Size, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return mirrors.Part{}, uploadErr(up, fmt.Errorf("chunk %d: %w", n, err))
	}
	return mirrors.Part{N: n, Size: prev.Size + size}, nil
}

// appendAt cuts f to off bytes, which it must hold, and writes exactly size
// bytes of r after them.
func appendAt(ctx context.Context, f *os.File, off int64, r io.Reader, size int64) error {
	if err := cut(f, off); err != nil {
		return err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	return writeChunk(ctx, f, r, size)
}

// writeChunk copies exactly size bytes from r to f and syncs f.
func writeChunk(ctx context.Context, f *os.File, r io.Reader, size int64) error {
	if m, ok := r.(interface {
		io.WriterTo
		Len() int
	}); ok && int64(m.Len()) == size {
		// Bytes in memory go to the file in one write.
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := m.WriteTo(f); err != nil {
			return err
		}
		return f.Sync()
	}
	w, err := io.CopyN(f, ctxReader{ctx, r}, size)
	if err == io.EOF {
		return fmt.Errorf("read %d of %d bytes: %w", w, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

// Complete cuts the data file to last.Size, syncs it and renames it to the
// object's path, then removes the upload directory.
func (m *Mirror) Complete(ctx context.Context, up mirrors.Upload, last mirrors.Part) error {
	dir, err := m.upload(up)
	if err != nil {
		return err
	}
	dst, err := m.objectPath(up.Key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsmirror: %w", err)
	}
	data := filepath.Join(dir, dataFile)
	err = settle(data, last.Size)
	if err == nil {
		err = publish(data, dst)
	}
	if err != nil {
		return uploadErr(up, fmt.Errorf("complete: %w", err))
	}
	if err := os.RemoveAll(dir); err != nil {
		return uploadErr(up, fmt.Errorf("complete: published, but removing the upload directory: %w", err))
	}
	return nil
}

// cut cuts f to n bytes, which it must hold: what lies past them is an
// earlier try of a chunk that was replaced or never recorded.
func cut(f *os.File, n int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() < n {
		return fmt.Errorf("the upload holds %d bytes, fewer than the %d it should", fi.Size(), n)
	}
	return f.Truncate(n)
}

// settle cuts the file at name to size bytes, which it must hold, and
// syncs it.
func settle(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := cut(f, size); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// Abort removes the upload directory with every chunk in it.
func (m *Mirror) Abort(ctx context.Context, up mirrors.Upload) error {
	dir, err := m.upload(up)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return uploadErr(up, fmt.Errorf("abort: %w", err))
	}
	return nil
}

// Open returns the object's bytes in [off, off+length), or from off to the
// end if length < 0. A range reaching past the end is cut at the end; off
// past the end is an error.
func (m *Mirror) Open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	p, err := m.objectPath(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("fsmirror: open %q: negative offset %d", key, off)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fsmirror: %w", err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, objectErr("open", key, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		f.Close()
		return nil, objectErr("open", key, err)
	}
	if off > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("fsmirror: open %q: offset %d past the end (%d bytes)", key, off, fi.Size())
	}
	n := fi.Size() - off
	if length >= 0 && length < n {
		n = length
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, objectErr("open", key, err)
	}
	return &fileReader{lr: io.LimitedReader{R: f, N: n}, f: f}, nil
}

// fileReader reads a range of an object's file.
type fileReader struct {
	lr io.LimitedReader
	f  *os.File
}

func (r *fileReader) Read(p []byte) (int, error) { return r.lr.Read(p) }

func (r *fileReader) Close() error { return r.f.Close() }

// WriteTo hands the rest of the range to w's ReadFrom where w has one, so
// that a network connection can let the kernel copy the file (sendfile).
func (r *fileReader) WriteTo(w io.Writer) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(&r.lr)
	}
	return io.Copy(w, &r.lr)
}

// Stat reports the size and modification time of the object's file.
func (m *Mirror) Stat(ctx context.Context, key string) (mirrors.Info, error) {
	p, err := m.objectPath(key)
	if err != nil {
		return mirrors.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return mirrors.Info{}, fmt.Errorf("fsmirror: %w", err)
	}
	fi, err := os.Stat(p)
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return mirrors.Info{}, objectErr("stat", key, err)
	}
	return mirrors.Info{Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// Delete removes the object's file. Directories left empty stay.
func (m *Mirror) Delete(ctx context.Context, key string) error {
	p, err := m.objectPath(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fsmirror: %w", err)
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsmirror: delete %q: %w", key, err)
	}
	return nil
}

// objectPath returns the file holding key. Keys are slash-separated
// relative paths without empty, "." or ".." elements, and must not start
// with the reserved ".uploads" element.
func (m *Mirror) objectPath(key string) (string, error) {
	if key == "" || key == "." || strings.ContainsRune(key, 0) || strings.ContainsRune(key, '\\') ||
		path.IsAbs(key) || filepath.IsAbs(key) || path.Clean(key) != key || !fs.ValidPath(key) {
		return "", fmt.Errorf("fsmirror: invalid key %q: want a relative slash-separated path without '.', '..', empty elements or backslashes", key)
	}
	if first, _, _ := strings.Cut(key, "/"); first == uploadsDir {
		return "", fmt.Errorf("fsmirror: invalid key %q: %q is reserved", key, uploadsDir)
	}
	return filepath.Join(m.dir, filepath.FromSlash(key)), nil
}

func (m *Mirror) uploadPath(id string) string {
	return filepath.Join(m.dir, uploadsDir, id)
}

// upload returns the directory of an upload in progress, or an error
// wrapping mirrors.ErrNotFound if there is none.
func (m *Mirror) upload(up mirrors.Upload) (string, error) {
	if _, err := uuid.Parse(up.ID); err != nil {
		return "", fmt.Errorf("fsmirror: invalid upload id %q: %w", up.ID, err)
	}
	dir := m.uploadPath(up.ID)
	if _, err := os.Stat(dir); err != nil {
		return "", uploadErr(up, err)
	}
	return dir, nil
}

// uploadErr describes err in up, wrapping mirrors.ErrNotFound if err means
// the upload's directory or a chunk is missing.
func uploadErr(up mirrors.Upload, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsmirror: upload %s of %q: %w: %w", up.ID, up.Key, mirrors.ErrNotFound, err)
	}
	return fmt.Errorf("fsmirror: upload %s of %q: %w", up.ID, up.Key, err)
}

// objectErr describes err in op on key, wrapping mirrors.ErrNotFound if
// the object does not exist.
func objectErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("fsmirror: %s %q: %w: %w", op, key, mirrors.ErrNotFound, err)
	}
	return fmt.Errorf("fsmirror: %s %q: %w", op, key, err)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
