// Package fsmirror implements a mirrors.Mirror that keeps objects as files
// in a local directory.
//
// An object with key "a/b.txt" is the file dir/a/b.txt. An upload in
// progress is the directory dir/.uploads/<id>, holding one file per chunk
// named by its number; Complete concatenates the chunk files into a
// temporary file in the upload directory, syncs it and renames it over the
// object, so a reader sees either the old object or the whole new one.
// Keys whose first element is ".uploads" are reserved.
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
	"strconv"
	"strings"
	"syscall"

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
	if err := os.Mkdir(m.uploadPath(up.ID), 0o755); err != nil {
		return mirrors.Upload{}, fmt.Errorf("fsmirror: begin %q: %w", key, err)
	}
	return up, nil
}

// PutPart writes chunk prev.N+1 to a temporary file in the upload directory,
// syncs it and renames it to its number, replacing an earlier attempt.
func (m *Mirror) PutPart(ctx context.Context, up mirrors.Upload, prev mirrors.Part, r io.Reader, size int64) (mirrors.Part, error) {
	dir, err := m.upload(up)
	if err != nil {
		return mirrors.Part{}, err
	}
	if prev.N < 0 || size < 0 {
		return mirrors.Part{}, fmt.Errorf("fsmirror: upload %s: bad chunk %d of %d bytes", up.ID, prev.N+1, size)
	}
	n := prev.N + 1
	f, err := os.CreateTemp(dir, ".chunk-*")
	if err != nil {
		return mirrors.Part{}, uploadErr(up, fmt.Errorf("chunk %d: %w", n, err))
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	err = writeChunk(ctx, f, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, strconv.Itoa(n)))
	}
	if err != nil {
		return mirrors.Part{}, uploadErr(up, fmt.Errorf("chunk %d: %w", n, err))
	}
	return mirrors.Part{N: n, Size: prev.Size + size}, nil
}

// writeChunk copies exactly size bytes from r to f and syncs f.
func writeChunk(ctx context.Context, f *os.File, r io.Reader, size int64) error {
	w, err := io.CopyN(f, ctxReader{ctx, r}, size)
	if err == io.EOF {
		return fmt.Errorf("read %d of %d bytes: %w", w, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return err
	}
	return f.Sync()
}

// Complete concatenates chunks 1..last.N into a temporary file, syncs it
// and renames it to the object's path, then removes the upload directory.
func (m *Mirror) Complete(ctx context.Context, up mirrors.Upload, last mirrors.Part) error {
	dir, err := m.upload(up)
	if err != nil {
		return err
	}
	dst, err := m.objectPath(up.Key)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".complete-*")
	if err != nil {
		return uploadErr(up, err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	err = concat(ctx, f, dir, last)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.MkdirAll(filepath.Dir(dst), 0o755)
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err == nil {
		err = syncDir(filepath.Dir(dst))
	}
	if err != nil {
		return uploadErr(up, fmt.Errorf("complete: %w", err))
	}
	if err := os.RemoveAll(dir); err != nil {
		return uploadErr(up, fmt.Errorf("complete: published, but removing the chunks: %w", err))
	}
	return nil
}

// concat appends chunk files 1..last.N from dir to f, checks the total is
// last.Size and syncs f.
func concat(ctx context.Context, f *os.File, dir string, last mirrors.Part) error {
	var total int64
	for n := 1; n <= last.N; n++ {
		c, err := os.Open(filepath.Join(dir, strconv.Itoa(n)))
		if err != nil {
			return fmt.Errorf("chunk %d: %w", n, err)
		}
		w, err := io.Copy(f, ctxReader{ctx, c})
		c.Close()
		if err != nil {
			return fmt.Errorf("chunk %d: %w", n, err)
		}
		total += w
	}
	if total != last.Size {
		return fmt.Errorf("chunks 1..%d hold %d bytes, want %d", last.N, total, last.Size)
	}
	return f.Sync()
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
	return sectionReadCloser{io.NewSectionReader(f, off, n), f}, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	io.Closer
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
