package main

// The benchmark's client runs in a process of its own, so that its work is
// not done by the process that is being measured: the test binary starts
// itself with a job in benchClientEnv, and TestMain runs that job instead of
// the tests. A job reads the bytes it sends from a file on disk, times what
// it is asked to time and writes a clientResult as JSON to stdout.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// benchClientEnv holds a clientJob as JSON when the test binary is the
// benchmark's client.
const benchClientEnv = "ACESTASH_BENCH_CLIENT"

func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(benchClientEnv); ok {
		os.Exit(clientMain(spec, os.Stdout, os.Stderr))
	}
	if path, ok := os.LookupEnv(serveEnv); ok {
		os.Exit(serveMain(path))
	}
	if _, ok := os.LookupEnv(mainEnv); ok {
		main()
		os.Exit(0)
	}
	os.Setenv(mainEnv, "1") // for the processes binary starts under -short
	code := m.Run()
	built.remove()
	if benchTable != "" {
		fmt.Print("\n" + benchTable)
	}
	os.Exit(code)
}

// clientJob is one measurement made by a client process.
type clientJob struct {
	Op      string     `json:"op"`                // a key of clientOps
	File    string     `json:"file"`              // the bytes to send, or the size to expect
	Base    string     `json:"base,omitempty"`    // acestash's or tusd's URL
	Key     string     `json:"key,omitempty"`     // account credentials
	Token   string     `json:"token,omitempty"`   // drain: the admin token
	Mirrors []string   `json:"mirrors,omitempty"` // chunked: mirrors[] of every upload; tus: Upload-Metadata mirrors; drain: from, to
	Copies  int        `json:"copies,omitempty"`  // chunked, put: uploads at once (put: to each target)
	Threads uint       `json:"threads,omitempty"` // put: parts one PutObject sends at once; 0: minio-go's default
	S3      []s3Target `json:"s3,omitempty"`      // put: the targets; get, rawput: the first
	Object  string     `json:"object,omitempty"`  // put, rawput: key prefix; get: the key
	Slug    string     `json:"slug,omitempty"`    // download
	Keys    []string   `json:"keys,omitempty"`    // smallget: objects; smalldown: slugs; read in turn
	Verify  bool       `json:"verify,omitempty"`  // download: hash a second, untimed download
	// raw, rawput: Requests bodies of the file's first RawSize bytes,
	// Workers at a time; smallget, smalldown: Requests reads of RawSize
	// bytes.
	Requests int `json:"requests,omitempty"`
	Workers  int `json:"workers,omitempty"`
	RawSize  int `json:"raw_size,omitempty"`
	// Fault, when set, is a signal the client sends while the job runs.
	Fault *clientFault `json:"fault,omitempty"`
}

// s3Target is a bucket on one MinIO server.
type s3Target struct {
	Endpoint  string `json:"endpoint"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Bucket    string `json:"bucket"`
}

// client returns a minio-go client for the target's server.
func (t s3Target) client() (*minio.Client, error) {
	tr, err := minio.DefaultTransport(false)
	if err != nil {
		return nil, fmt.Errorf("minio client for %s: %w", t.Endpoint, err)
	}
	// As a careful user running many requests at once would: one idle
	// connection kept for each worker, not minio-go's 16 per host.
	tr.MaxIdleConnsPerHost = tr.MaxIdleConns
	c, err := minio.New(t.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(t.AccessKey, t.SecretKey, ""), Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("minio client for %s: %w", t.Endpoint, err)
	}
	return c, nil
}

// clientResult is what a client process reports.
type clientResult struct {
	Seconds float64  `json:"seconds"`          // wall time of the timed part
	Slugs   []string `json:"slugs,omitempty"`  // chunked: one per upload
	Bytes   int64    `json:"bytes,omitempty"`  // download, get: bytes received
	SHA256  string   `json:"sha256,omitempty"` // download with Verify: of the bytes received
	// Request times of many small requests, in seconds.
	P50 float64 `json:"p50,omitempty"`
	P99 float64 `json:"p99,omitempty"`
}

// clientOps are the jobs a client can do; each gets the open file and its
// size.
var clientOps = map[string]func(ctx context.Context, j clientJob, f *os.File, size int64) (clientResult, error){
	"chunked":   chunkedUploads,
	"put":       putObjects,
	"tus":       tusUpload,
	"download":  download,
	"get":       getObject,
	"raw":       rawUploads,
	"rawput":    rawPuts,
	"smallget":  smallGets,
	"smalldown": smallDownloads,
	"drain":     drainJob,
}

// clientMain runs the job in spec and writes its result to stdout; it
// returns the process's exit status.
func clientMain(spec string, stdout, stderr io.Writer) int {
	var j clientJob
	if err := json.Unmarshal([]byte(spec), &j); err != nil {
		fmt.Fprintf(stderr, "bench client: job: %v\n", err)
		return 2
	}
	op, ok := clientOps[j.Op]
	if !ok {
		fmt.Fprintf(stderr, "bench client: unknown op %q\n", j.Op)
		return 2
	}
	res, err := func() (clientResult, error) {
		f, err := os.Open(j.File)
		if err != nil {
			return clientResult{}, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return clientResult{}, err
		}
		defer j.Fault.arm()()
		return op(context.Background(), j, f, fi.Size())
	}()
	if err != nil {
		fmt.Fprintf(stderr, "bench client: %s: %v\n", j.Op, err)
		return 1
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintf(stderr, "bench client: %v\n", err)
		return 1
	}
	return 0
}

// clientHTTP talks to acestash and tusd; loopback only, never a proxy.
var clientHTTP = &http.Client{Transport: &http.Transport{
	MaxIdleConnsPerHost: 64,
	DisableCompression:  true,
	WriteBufferSize:     64 << 10,
	ReadBufferSize:      64 << 10,
}}

// parallel runs fn(0) … fn(n-1) at once and returns their errors joined.
func parallel(n int, fn func(i int) error) error {
	errc := make(chan error, n)
	for i := range n {
		go func() { errc <- fn(i) }()
	}
	var errs []error
	for range n {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// chunkedUploads sends the file Copies times at once as MirrorAce chunked
// uploads to Mirrors, and times them together.
func chunkedUploads(ctx context.Context, j clientJob, f *os.File, size int64) (clientResult, error) {
	slugs := make([]string, j.Copies)
	t0 := time.Now()
	err := parallel(j.Copies, func(i int) error {
		var err error
		slugs[i], err = chunkedUpload(ctx, j, f, size)
		return err
	})
	return clientResult{Seconds: time.Since(t0).Seconds(), Slugs: slugs}, err
}

// chunkedUpload asks for an upload key, then sends the file as the .NET
// client does: chunks of the advertised max_chunk_size, each a
// multipart/form-data request with the fields before the file part and an
// inclusive Content-Range. It returns the slug of the finished file.
func chunkedUpload(ctx context.Context, j clientJob, f *os.File, size int64) (string, error) {
	var info uploadInfo
	form := url.Values{"api_key": {j.Key}, "api_token": {j.Token}}.Encode()
	err := postEnvelope(ctx, j.Base+"/api/v1/file/upload", "application/x-www-form-urlencoded",
		strings.NewReader(form), int64(len(form)), nil, &info)
	if err != nil {
		return "", fmt.Errorf("file/upload: %w", err)
	}
	chunk, err := strconv.ParseInt(info.MaxChunkSize, 10, 64)
	if err != nil || chunk <= 0 {
		return "", fmt.Errorf("file/upload: max_chunk_size %q", info.MaxChunkSize)
	}
	fields := []field{{"api_key", j.Key}, {"api_token", j.Token}, {"cTracker", info.CTracker}, {"upload_key", info.UploadKey}}
	for _, m := range j.Mirrors {
		fields = append(fields, field{"mirrors[]", m})
	}
	head, tail, ctype, err := formAround(fields, "files[]", filepath.Base(f.Name()))
	if err != nil {
		return "", err
	}
	var res uploadResult
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		body := io.MultiReader(bytes.NewReader(head), io.NewSectionReader(f, off, n), strings.NewReader(tail))
		hdr := http.Header{"Content-Range": {fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size)}}
		if err := postEnvelope(ctx, j.Base+"/api/v1/upload", ctype, body, int64(len(head))+n+int64(len(tail)), hdr, &res); err != nil {
			return "", fmt.Errorf("chunk at %d: %w", off, err)
		}
		want := "continue"
		if off+n == size {
			want = "complete"
		}
		if res.Info != want {
			return "", fmt.Errorf("chunk at %d: info %q, want %q", off, res.Info, want)
		}
	}
	return res.Slug, nil
}

// formAround returns the multipart/form-data encoding of fields followed by
// a file part, split around the file's bytes, and its Content-Type.
func formAround(fields []field, fileField, fileName string) (head []byte, tail, ctype string, err error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := w.WriteField(f.name, f.value); err != nil {
			return nil, "", "", err
		}
	}
	if _, err := w.CreateFormFile(fileField, fileName); err != nil {
		return nil, "", "", err
	}
	return buf.Bytes(), "\r\n--" + w.Boundary() + "--\r\n", w.FormDataContentType(), nil
}

// postEnvelope POSTs body and decodes a successful MirrorAce envelope's
// result into v.
func postEnvelope(ctx context.Context, u, ctype string, body io.Reader, n int64, hdr http.Header, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return err
	}
	req.ContentLength = n
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := clientHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	var env envelope
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &env) != nil || env.Status != "success" {
		return &answerError{resp.StatusCode, fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(b))}
	}
	if err := json.Unmarshal(env.Result, v); err != nil {
		return fmt.Errorf("result %s: %w", env.Result, err)
	}
	return nil
}

// answerError is an answer that is not a MirrorAce success.
type answerError struct {
	code int // HTTP status
	text string
}

func (e *answerError) Error() string { return e.text }

// putObjects writes the file with PutObject to every target at once,
// Copies times each, as objects "<Object>-<copy>", and times them together.
func putObjects(ctx context.Context, j clientJob, f *os.File, size int64) (clientResult, error) {
	clients := make([]*minio.Client, len(j.S3))
	for i, t := range j.S3 {
		var err error
		if clients[i], err = t.client(); err != nil {
			return clientResult{}, err
		}
	}
	t0 := time.Now()
	err := parallel(j.Copies*len(j.S3), func(i int) error {
		t, c := j.S3[i%len(j.S3)], clients[i%len(j.S3)]
		key := fmt.Sprintf("%s-%d", j.Object, i/len(j.S3))
		// As over TLS, and as a careful client on plain HTTP does: no
		// SHA-256 of every part for the signature.
		opts := minio.PutObjectOptions{NumThreads: j.Threads, DisableContentSha256: true}
		if _, err := c.PutObject(ctx, t.Bucket, key, io.NewSectionReader(f, 0, size), size, opts); err != nil {
			return fmt.Errorf("PutObject %s/%s on %s: %w", t.Bucket, key, t.Endpoint, err)
		}
		return nil
	})
	return clientResult{Seconds: time.Since(t0).Seconds()}, err
}

// tusUpload sends the file with the tus 1.0.0 protocol, to tusd or to
// acestash (with Key, Token and Mirrors): a POST that creates the upload,
// then one PATCH with every byte. From acestash it reports the slug.
func tusUpload(ctx context.Context, j clientJob, f *os.File, size int64) (clientResult, error) {
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.Base+"/files/", nil)
	if err != nil {
		return clientResult{}, err
	}
	hdr := http.Header{"Tus-Resumable": {"1.0.0"}}
	if j.Key != "" {
		hdr.Set("Authorization", "Bearer "+j.Key+":"+j.Token)
	}
	req.Header = hdr.Clone()
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte(filepath.Base(f.Name())))
	if len(j.Mirrors) > 0 {
		meta += ",mirrors " + base64.StdEncoding.EncodeToString([]byte(strings.Join(j.Mirrors, ",")))
	}
	req.Header.Set("Upload-Metadata", meta)
	resp, err := clientHTTP.Do(req)
	if err != nil {
		return clientResult{}, err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return clientResult{}, fmt.Errorf("POST /files/: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	loc, err := req.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return clientResult{}, fmt.Errorf("POST /files/: Location: %w", err)
	}

	req, err = http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), io.NewSectionReader(f, 0, size))
	if err != nil {
		return clientResult{}, err
	}
	req.ContentLength = size
	req.Header = hdr.Clone()
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", "0")
	resp, err = clientHTTP.Do(req)
	if err != nil {
		return clientResult{}, err
	}
	b, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != strconv.FormatInt(size, 10) {
		return clientResult{}, fmt.Errorf("PATCH %s: %s, Upload-Offset %q: %s", loc, resp.Status, resp.Header.Get("Upload-Offset"), bytes.TrimSpace(b))
	}
	res := clientResult{Seconds: time.Since(t0).Seconds()}
	if slug := resp.Header.Get("Acestash-Slug"); slug != "" {
		res.Slugs = []string{slug}
	} else if j.Key != "" {
		return res, fmt.Errorf("PATCH %s: no Acestash-Slug header on the last PATCH", loc)
	}
	return res, nil
}

// download GETs /m/<Slug>/download, discarding the bytes, and checks that
// as many came as the file has. With Verify it downloads again, untimed,
// and reports the SHA-256 of what came.
func download(ctx context.Context, j clientJob, _ *os.File, size int64) (clientResult, error) {
	u := j.Base + "/m/" + j.Slug + "/download"
	t0 := time.Now()
	n, err := get(ctx, u, nil)
	res := clientResult{Seconds: time.Since(t0).Seconds(), Bytes: n}
	if err != nil {
		return res, err
	}
	if n != size {
		return res, fmt.Errorf("GET %s: %d bytes, want %d", u, n, size)
	}
	if j.Verify {
		h := sha256.New()
		if _, err := get(ctx, u, h); err != nil {
			return res, err
		}
		res.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return res, nil
}

// get GETs u, writing the body to h if it is not nil, and returns how many
// bytes came.
func get(ctx context.Context, u string, h hash.Hash) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := clientHTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return 0, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(b))
	}
	var w io.Writer = io.Discard
	if h != nil {
		w = h
	}
	n, err := drain(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: %w", u, err)
	}
	return n, nil
}

// drain copies r to w through a 1 MiB buffer, the same way for every
// source, and returns the bytes copied.
func drain(w io.Writer, r io.Reader) (int64, error) {
	// The wrappers hide ReaderFrom and WriterTo, so both sides of a
	// comparison copy alike.
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, make([]byte, 1<<20))
}

// getObject reads object Object from the first target, discarding the
// bytes, and checks that as many came as the file has.
func getObject(ctx context.Context, j clientJob, _ *os.File, size int64) (clientResult, error) {
	t := j.S3[0]
	c, err := t.client()
	if err != nil {
		return clientResult{}, err
	}
	t0 := time.Now()
	obj, err := c.GetObject(ctx, t.Bucket, j.Object, minio.GetObjectOptions{})
	if err != nil {
		return clientResult{}, fmt.Errorf("GetObject %s/%s: %w", t.Bucket, j.Object, err)
	}
	defer obj.Close()
	n, err := drain(io.Discard, obj)
	res := clientResult{Seconds: time.Since(t0).Seconds(), Bytes: n}
	if err != nil {
		return res, fmt.Errorf("GetObject %s/%s: %w", t.Bucket, j.Object, err)
	}
	if n != size {
		return res, fmt.Errorf("GetObject %s/%s: %d bytes, want %d", t.Bucket, j.Object, n, size)
	}
	return res, nil
}

// rawUploads POSTs Requests raw bodies to /upload, Workers at a time, and
// checks that each answer is a file URL.
func rawUploads(ctx context.Context, j clientJob, f *os.File, _ int64) (clientResult, error) {
	return rawLoop(j, f, func(_ int64, body []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.Base+"/upload", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := clientHTTP.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if err != nil {
			return fmt.Errorf("POST /upload: reading the answer: %w", err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(b, []byte(j.Base+"/uploads/")) {
			return fmt.Errorf("POST /upload: %s: %s", resp.Status, bytes.TrimSpace(b))
		}
		return nil
	})
}

// rawPuts writes Requests objects "<Object>-<n>" of the file's first
// RawSize bytes to the first target, Workers at a time.
func rawPuts(ctx context.Context, j clientJob, f *os.File, _ int64) (clientResult, error) {
	t := j.S3[0]
	c, err := t.client()
	if err != nil {
		return clientResult{}, err
	}
	return rawLoop(j, f, func(n int64, body []byte) error {
		key := fmt.Sprintf("%s-%d", j.Object, n)
		if _, err := c.PutObject(ctx, t.Bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
			return fmt.Errorf("PutObject %s/%s: %w", t.Bucket, key, err)
		}
		return nil
	})
}

// rawLoop calls send for requests 1..Requests, Workers at a time, with
// the file's first RawSize bytes, and times them together. A worker stops
// at its first error.
func rawLoop(j clientJob, f *os.File, send func(n int64, body []byte) error) (clientResult, error) {
	body := make([]byte, j.RawSize)
	if _, err := f.ReadAt(body, 0); err != nil {
		return clientResult{}, fmt.Errorf("reading %d bytes of %s: %w", j.RawSize, f.Name(), err)
	}
	return timedLoop(j, func(n int64) error { return send(n, body) })
}

// timedLoop calls send for requests 1..Requests, Workers at a time, and
// times them together and each alone. A worker stops at its first error.
func timedLoop(j clientJob, send func(n int64) error) (clientResult, error) {
	var next atomic.Int64
	took := make([]float64, j.Requests)
	t0 := time.Now()
	err := parallel(j.Workers, func(int) error {
		for n := next.Add(1); n <= int64(j.Requests); n = next.Add(1) {
			start := time.Now()
			if err := send(n); err != nil {
				return err
			}
			took[n-1] = time.Since(start).Seconds()
		}
		return nil
	})
	res := clientResult{Seconds: time.Since(t0).Seconds()}
	slices.Sort(took)
	res.P50, res.P99 = took[len(took)/2], took[len(took)*99/100]
	return res, err
}

// smallGets reads the objects Keys of the first target in turn with
// GetObject, Requests times, Workers at a time, checking each holds
// RawSize bytes.
func smallGets(ctx context.Context, j clientJob, _ *os.File, _ int64) (clientResult, error) {
	t := j.S3[0]
	c, err := t.client()
	if err != nil {
		return clientResult{}, err
	}
	return timedLoop(j, func(n int64) error {
		key := j.Keys[int(n)%len(j.Keys)]
		obj, err := c.GetObject(ctx, t.Bucket, key, minio.GetObjectOptions{})
		if err != nil {
			return fmt.Errorf("GetObject %s/%s: %w", t.Bucket, key, err)
		}
		defer obj.Close()
		k, err := drainSmall(obj)
		if err == nil && k != int64(j.RawSize) {
			err = fmt.Errorf("%d bytes, want %d", k, j.RawSize)
		}
		if err != nil {
			return fmt.Errorf("GetObject %s/%s: %w", t.Bucket, key, err)
		}
		return nil
	})
}

// smallDownloads GETs /uploads/<slug> of the slugs Keys in turn, as
// smallGets reads objects.
func smallDownloads(ctx context.Context, j clientJob, _ *os.File, _ int64) (clientResult, error) {
	return timedLoop(j, func(n int64) error {
		u := j.Base + "/uploads/" + j.Keys[int(n)%len(j.Keys)]
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := clientHTTP.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		k, err := drainSmall(resp.Body)
		if err == nil && (resp.StatusCode != http.StatusOK || k != int64(j.RawSize)) {
			err = fmt.Errorf("%s, %d bytes, want %d", resp.Status, k, j.RawSize)
		}
		if err != nil {
			return fmt.Errorf("GET %s: %w", u, err)
		}
		return nil
	})
}

// drainSmall reads r to its end through a 64 KiB buffer.
func drainSmall(r io.Reader) (int64, error) {
	return io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, make([]byte, 64<<10))
}
