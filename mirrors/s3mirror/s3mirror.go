// Package s3mirror implements a mirrors.Mirror on an S3 bucket with
// minio-go.
//
// Each upload is one S3 multipart upload. S3 refuses parts other than the
// last that are smaller than 5 MiB, while chunks may have any size, so a
// chunk that would not fill a part is staged as an object of its own,
// ".acestash-staging/<marker id>/<chunk number>", in the same bucket: the
// next chunk may reach another node, which finds everything it needs in the
// bucket and the Part token. Once the staged chunks and the incoming one
// add up to 5 MiB they are streamed, staged objects first, into the next
// S3 part; Complete sends what is still staged as the last part. Staging
// objects are kept until Complete or Abort removes them, so a chunk can be
// retried from the Part before it.
//
// Chunks stream through to S3; nothing is held in memory or on local disk.
// Payloads are sent unsigned (the request headers are still signed): the
// caller hashes the bytes once, and signing them again per mirror would cost
// a SHA-256 of every byte on every mirror.
package s3mirror

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/acestash/acestash/mirrors"
)

const (
	// StagingPrefix is the key prefix of staged chunks. Keys under it are
	// reserved; a lifecycle rule expiring it after a few days removes what
	// crashed uploads leave.
	StagingPrefix = ".acestash-staging/"

	// minPartSize is the smallest part S3 accepts other than the last.
	minPartSize = 5 << 20
	// maxPartSize is the largest part S3 accepts.
	maxPartSize = 5 << 30
)

// Config says where a mirror stores objects.
type Config struct {
	Endpoint  string // host[:port] of the S3 API, without a scheme
	Bucket    string // created by New if missing
	AccessKey string
	SecretKey string
	Secure    bool   // use https
	Region    string // optional
	// PublicEndpoint is how clients reach the S3 API, for the URLs
	// PresignGet signs: host[:port] (with Secure's scheme) or
	// http(s)://host[:port]. Empty: clients cannot be sent there.
	PublicEndpoint string
}

// Mirror stores objects in an S3 bucket. It is safe for concurrent use,
// also by several processes sharing the bucket.
//
// A request's operations try each S3 call once: a refused or reset
// connection is an answer, and the caller has other mirrors. Contexts
// marked mirrors.Patient (background jobs) get minio-go's usual retries.
type Mirror struct {
	core    minio.Core // one try per call
	patient minio.Core // minio-go's retries
	bucket  string
	public  *minio.Client // signs URLs for clients; nil without PublicEndpoint
	plain   bool          // plain HTTP: large reads may be spliced
}

// at returns the client for the operations of ctx.
func (m *Mirror) at(ctx context.Context) minio.Core {
	if mirrors.IsPatient(ctx) {
		return m.patient
	}
	return m.core
}

var (
	_ mirrors.Mirror     = (*Mirror)(nil)
	_ mirrors.Pinger     = (*Mirror)(nil)
	_ mirrors.Concurrent = (*Mirror)(nil)
	_ mirrors.Lister     = (*Mirror)(nil)
	_ mirrors.Presigner  = (*Mirror)(nil)
)

// ListObjects lists the bucket's objects under prefix, leaving out staged
// chunks.
func (m *Mirror) ListObjects(ctx context.Context, prefix string, fn func(key string, info mirrors.Info) error) error {
	ctx, cancel := context.WithCancel(ctx) // ends the listing if fn stops it
	defer cancel()
	for obj := range m.at(ctx).Client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return wrap(obj.Err, "list objects")
		}
		if strings.HasPrefix(obj.Key, StagingPrefix) {
			continue
		}
		if err := fn(obj.Key, mirrors.Info{Size: obj.Size, Modified: obj.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

// ListUploads lists the uploads under prefix that were begun and not
// completed or aborted, by the markers Begin leaves. A marker is written
// before its S3 upload starts, so S3's own list of the marker's key (which
// every S3 server gives for one key) tells which upload is its; a marker
// whose upload never started is listed with an ID Abort accepts too.
func (m *Mirror) ListUploads(ctx context.Context, prefix string, fn func(up mirrors.Upload, began time.Time) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	marks := map[string][]marker{} // by key
	for obj := range m.at(ctx).Client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Prefix: StagingPrefix, Recursive: true}) {
		if obj.Err != nil {
			return wrap(obj.Err, "list uploads")
		}
		id, rest, _ := strings.Cut(strings.TrimPrefix(obj.Key, StagingPrefix), "/")
		key, ok := strings.CutPrefix(rest, beganDir)
		if !ok || !strings.HasPrefix(key, prefix) {
			continue
		}
		if len(id) != markLen || !isHex(id) {
			// Begun before markers came first: the id is S3's.
			if err := fn(mirrors.Upload{Key: key, ID: id}, obj.LastModified); err != nil {
				return err
			}
			continue
		}
		marks[key] = append(marks[key], marker{id, obj.LastModified})
	}
	for key, ms := range marks {
		ups, began, err := m.pair(ctx, key, ms)
		if err != nil {
			return err
		}
		for i, up := range ups {
			if err := fn(up, began[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// marker is an upload's marker: its id and when it was written.
type marker struct {
	id string
	at time.Time
}

// pair returns the Uploads the markers of key name, with when each began:
// a marker names S3's uploads of key begun at or after it and before the
// next marker (the earliest marker takes any begun before it), or, when
// there is none, an upload that never started.
func (m *Mirror) pair(ctx context.Context, key string, ms []marker) ([]mirrors.Upload, []time.Time, error) {
	slices.SortFunc(ms, func(a, b marker) int { return a.at.Compare(b.at) })
	s3 := make([][]string, len(ms))
	keyMarker, idMarker := "", ""
	for {
		res, err := m.at(ctx).ListMultipartUploads(ctx, m.bucket, key, keyMarker, idMarker, "", 1000)
		if err != nil {
			return nil, nil, wrap(err, "list uploads of %q", key)
		}
		for _, u := range res.Uploads {
			if u.Key != key {
				continue
			}
			i := 0
			for i+1 < len(ms) && !ms[i+1].at.After(u.Initiated) {
				i++
			}
			s3[i] = append(s3[i], u.UploadID)
		}
		if !res.IsTruncated {
			break
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
	var ups []mirrors.Upload
	var began []time.Time
	for i, mk := range ms {
		if len(s3[i]) == 0 {
			s3[i] = []string{""}
		}
		for _, id := range s3[i] {
			ups = append(ups, mirrors.Upload{Key: key, ID: mk.id + "." + id})
			began = append(began, mk.at)
		}
	}
	return ups, began, nil
}

// New connects to the bucket, creating it if it does not exist.
func New(ctx context.Context, cfg Config) (*Mirror, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3mirror: endpoint and bucket are required")
	}
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("s3mirror: %w", err)
	}
	// A mirror is one host: minio-go's default of 16 idle connections per
	// host made every download past the 16th at once open and close a
	// connection of its own.
	tr.MaxIdleConnsPerHost = tr.MaxIdleConns
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return bodyConn{c}, nil
	}
	client := func(retries int) (*minio.Client, error) {
		return minio.New(cfg.Endpoint, &minio.Options{
			Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
			Secure:     cfg.Secure,
			Region:     cfg.Region,
			Transport:  tr, // shared: one pool of connections
			MaxRetries: retries,
		})
	}
	once, err := client(1)
	if err != nil {
		return nil, fmt.Errorf("s3mirror: %w", err)
	}
	patient, err := client(0) // 0: minio-go's default
	if err != nil {
		return nil, fmt.Errorf("s3mirror: %w", err)
	}
	m := &Mirror{core: minio.Core{Client: once}, patient: minio.Core{Client: patient}, bucket: cfg.Bucket, plain: !cfg.Secure}
	if cfg.PublicEndpoint != "" {
		if m.public, err = signer(cfg); err != nil {
			return nil, err
		}
	}
	// Start-up, not a client's request: retry a MinIO that is still starting.
	if err := m.ensureBucket(mirrors.Patient(ctx), cfg.Region); err != nil {
		return nil, err
	}
	return m, nil
}

// signer returns a client that signs URLs for the public endpoint. It
// never connects: its region is set, so signing asks S3 nothing.
func signer(cfg Config) (*minio.Client, error) {
	host, secure := cfg.PublicEndpoint, cfg.Secure
	if strings.Contains(host, "://") {
		u, err := url.Parse(host)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("s3mirror: public endpoint %q: want host[:port] or http(s)://host[:port]", cfg.PublicEndpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1" // MinIO's and S3's default
	}
	c, err := minio.New(host, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Secure: secure, Region: region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3mirror: public endpoint %q: %w", cfg.PublicEndpoint, err)
	}
	return c, nil
}

// PresignGet signs a GET of the object on the public endpoint, valid for
// expiry, whose answer carries resp's headers.
func (m *Mirror) PresignGet(ctx context.Context, key string, expiry time.Duration, resp mirrors.Response) (string, error) {
	if m.public == nil {
		return "", errors.New("s3mirror: no public endpoint to send clients to")
	}
	if err := checkKey(key); err != nil {
		return "", err
	}
	q := url.Values{}
	for k, v := range map[string]string{
		"response-content-type":        resp.ContentType,
		"response-content-disposition": resp.ContentDisposition,
		"response-cache-control":       resp.CacheControl,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	u, err := m.public.PresignedGetObject(ctx, m.bucket, key, expiry, q)
	if err != nil {
		return "", wrap(err, "presign %q", key)
	}
	return u.String(), nil
}

// bodyConn is a connection to S3 that lets a request body write itself
// (bytes in memory do so with one write). net/http hands a body to the
// connection's ReadFrom wrapped in an io.LimitedReader, which the standard
// connection copies through a 32 KiB buffer: a copy of every byte and a
// system call per 32 KiB on the hottest path.
type bodyConn struct{ net.Conn }

func (c bodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if wt, ok := lr.R.(io.WriterTo); ok {
			n, err := wt.WriteTo(&limitWriter{w: c.Conn, left: lr.N})
			lr.N -= n
			if errors.Is(err, errLimit) {
				err = nil
			}
			return n, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// errLimit stops a body at the length its request declared.
var errLimit = errors.New("s3mirror: body longer than declared")

// limitWriter writes at most left bytes to w.
type limitWriter struct {
	w    io.Writer
	left int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	over := int64(len(p)) > l.left
	if over {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	if err == nil && over {
		err = errLimit
	}
	return n, err
}

// ensureBucket creates the bucket unless it exists, tolerating another
// process creating it at the same time.
func (m *Mirror) ensureBucket(ctx context.Context, region string) error {
	ok, err := m.at(ctx).BucketExists(ctx, m.bucket)
	if err != nil {
		return fmt.Errorf("s3mirror: bucket %q: %w", m.bucket, err)
	}
	if ok {
		return nil
	}
	err = m.at(ctx).MakeBucket(ctx, m.bucket, minio.MakeBucketOptions{Region: region})
	if err == nil || errorCode(err) == "BucketAlreadyOwnedByYou" {
		return nil
	}
	if ok, err2 := m.at(ctx).BucketExists(ctx, m.bucket); err2 == nil && ok {
		return nil
	}
	return fmt.Errorf("s3mirror: creating bucket %q: %w", m.bucket, err)
}

// Ping checks that the bucket exists and answers.
func (m *Mirror) Ping(ctx context.Context) error {
	ok, err := m.at(ctx).BucketExists(ctx, m.bucket)
	if err != nil {
		return fmt.Errorf("s3mirror: ping bucket %q: %w", m.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3mirror: ping: bucket %q: %w", m.bucket, mirrors.ErrNotFound)
	}
	return nil
}

// putOptions sends payloads unsigned.
func putOptions() minio.PutObjectOptions {
	return minio.PutObjectOptions{DisableContentSha256: true}
}

// Put stores the object with one PutObject request; S3 accepts up to 5 GiB
// that way.
func (m *Mirror) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if size < 0 || size > maxPartSize {
		return fmt.Errorf("s3mirror: put %q: size %d outside 0..%d", key, size, int64(maxPartSize))
	}
	if _, err := m.at(ctx).PutObject(ctx, m.bucket, key, exactly(r, size), size, "", "", putOptions()); err != nil {
		return wrap(err, "put %q", key)
	}
	return nil
}

// Begin writes the upload's marker, then starts an S3 multipart upload.
// The Upload's ID is the marker's own id, a dot and S3's upload id, so a
// node killed between the two steps leaves a marker that ListUploads
// finds, never an S3 upload that nothing names.
func (m *Mirror) Begin(ctx context.Context, key string) (mirrors.Upload, error) {
	if err := checkKey(key); err != nil {
		return mirrors.Upload{}, err
	}
	var b [16]byte
	rand.Read(b[:])
	mark := hex.EncodeToString(b[:])
	// S3 servers need not list uploads by prefix (MinIO does not), so an
	// empty marker names the upload until Complete or Abort removes it
	// with the staged chunks.
	if _, err := m.at(ctx).PutObject(ctx, m.bucket, beganKey(mark, key), strings.NewReader(""), 0, "", "", putOptions()); err != nil {
		return mirrors.Upload{}, wrap(err, "begin %q: mark the upload", key)
	}
	id, err := m.at(ctx).NewMultipartUpload(ctx, m.bucket, key, minio.PutObjectOptions{})
	if err != nil {
		m.at(ctx).RemoveObject(context.WithoutCancel(ctx), m.bucket, beganKey(mark, key), minio.RemoveObjectOptions{})
		return mirrors.Upload{}, wrap(err, "begin %q", key)
	}
	return mirrors.Upload{Key: key, ID: mark + "." + id}, nil
}

// ids splits an Upload's ID into the id of its marker and staged chunks
// and S3's upload id, which is empty for a marker whose upload never
// started. Uploads begun before markers came first have one id for both.
func ids(up mirrors.Upload) (mark, s3 string) {
	if len(up.ID) > markLen && up.ID[markLen] == '.' && isHex(up.ID[:markLen]) {
		return up.ID[:markLen], up.ID[markLen+1:]
	}
	return up.ID, up.ID
}

// markLen is the length of a marker's id: 16 random bytes in hex.
const markLen = 32

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// PutPart stores chunk prev.N+1. If it and the chunks staged since the last
// S3 part hold at least 5 MiB, they become S3 part number len(prev's
// parts)+1; otherwise the chunk is staged. Either way a retry from the same
// prev writes the same part number or staging object again, replacing the
// earlier attempt.
func (m *Mirror) PutPart(ctx context.Context, up mirrors.Upload, prev mirrors.Part, r io.Reader, size int64) (mirrors.Part, error) {
	tok, err := decodeToken(prev)
	if err != nil {
		return mirrors.Part{}, fmt.Errorf("s3mirror: upload %s of %q: %w", up.ID, up.Key, err)
	}
	if size < 0 {
		return mirrors.Part{}, fmt.Errorf("s3mirror: upload %s of %q: negative chunk size %d", up.ID, up.Key, size)
	}
	n := prev.N + 1
	staged := tok.stagedSize()
	total := staged + size
	if total > maxPartSize {
		return mirrors.Part{}, fmt.Errorf("s3mirror: upload %s of %q: chunk %d would make a part of %d bytes, more than S3's limit of %d",
			up.ID, up.Key, n, total, int64(maxPartSize))
	}
	body := exactly(r, size)
	var next token
	if total >= minPartSize {
		if staged > 0 {
			sr := m.stagedReader(ctx, up, tok.First, tok.Sizes)
			defer sr.Close()
			body = io.MultiReader(sr, body)
		}
		etag, err := m.putPart(ctx, up, len(tok.ETags)+1, body, total)
		if err != nil {
			return mirrors.Part{}, fmt.Errorf("%w (chunk %d)", err, n)
		}
		next.ETags = append(tok.ETags[:len(tok.ETags):len(tok.ETags)], etag)
	} else {
		if err := m.stage(ctx, up, n, body, size); err != nil {
			return mirrors.Part{}, err
		}
		next.ETags, next.First = tok.ETags, tok.First
		if len(tok.Sizes) == 0 {
			next.First = n
		}
		next.Sizes = append(tok.Sizes[:len(tok.Sizes):len(tok.Sizes)], size)
	}
	return mirrors.Part{N: n, Size: prev.Size + size, Token: next.encode()}, nil
}

// Next says which Part a chunk will leave when it becomes an S3 part of its
// own: nothing is staged before it and it holds at least 5 MiB. Its ETag
// is not known yet; Settle fills it in.
func (m *Mirror) Next(prev mirrors.Part, size int64) (mirrors.Part, bool) {
	tok, err := decodeToken(prev)
	if err != nil || len(tok.Sizes) > 0 || size < minPartSize || size > maxPartSize {
		return mirrors.Part{}, false
	}
	tok.ETags = append(tok.ETags[:len(tok.ETags):len(tok.ETags)], "")
	return mirrors.Part{N: prev.N + 1, Size: prev.Size + size, Token: tok.encode()}, true
}

// Settle gives the last Part the ETags that each of parts learned.
func (m *Mirror) Settle(parts []mirrors.Part) mirrors.Part {
	last := parts[len(parts)-1]
	tok, err := decodeToken(last)
	if err != nil {
		return last // PutPart made it; it decodes
	}
	for _, p := range parts {
		t, err := decodeToken(p)
		if err != nil {
			continue
		}
		for i, etag := range t.ETags {
			if etag != "" && i < len(tok.ETags) && tok.ETags[i] == "" {
				tok.ETags[i] = etag
			}
		}
	}
	last.Token = tok.encode()
	return last
}

// putPart uploads body as S3 part number pn and returns its ETag.
func (m *Mirror) putPart(ctx context.Context, up mirrors.Upload, pn int, body io.Reader, size int64) (string, error) {
	_, s3 := ids(up)
	p, err := m.at(ctx).PutObjectPart(ctx, m.bucket, up.Key, s3, pn, body, size, minio.PutObjectPartOptions{DisableContentSha256: true})
	if err != nil {
		return "", wrap(err, "upload %s of %q: part %d", up.ID, up.Key, pn)
	}
	return p.ETag, nil
}

// stage stores chunk n as a staging object, then checks that the upload
// still exists: if Abort ran meanwhile, the object is removed again.
func (m *Mirror) stage(ctx context.Context, up mirrors.Upload, n int, body io.Reader, size int64) error {
	mark, _ := ids(up)
	key := stagingKey(mark, n)
	if _, err := m.at(ctx).PutObject(ctx, m.bucket, key, body, size, "", "", putOptions()); err != nil {
		return wrap(err, "upload %s of %q: staging chunk %d", up.ID, up.Key, n)
	}
	if err := m.checkUpload(ctx, up); err != nil {
		m.at(ctx).RemoveObject(ctx, m.bucket, key, minio.RemoveObjectOptions{})
		return err
	}
	return nil
}

// checkUpload returns an error wrapping mirrors.ErrNotFound if the
// multipart upload is gone.
func (m *Mirror) checkUpload(ctx context.Context, up mirrors.Upload) error {
	_, s3 := ids(up)
	if s3 == "" {
		return fmt.Errorf("s3mirror: upload %s of %q: never started: %w", up.ID, up.Key, mirrors.ErrNotFound)
	}
	if _, err := m.at(ctx).ListObjectParts(ctx, m.bucket, up.Key, s3, 0, 1); err != nil {
		return wrap(err, "upload %s of %q", up.ID, up.Key)
	}
	return nil
}

// Complete sends the chunks still staged after last as the final S3 part
// and completes the multipart upload. An upload that never filled a part
// is instead written with one PutObject of its staged chunks and its
// multipart upload aborted. Staging objects are then removed; failing to
// remove them does not fail Complete, since the object is published.
func (m *Mirror) Complete(ctx context.Context, up mirrors.Upload, last mirrors.Part) error {
	tok, err := decodeToken(last)
	if err != nil {
		return fmt.Errorf("s3mirror: upload %s of %q: %w", up.ID, up.Key, err)
	}
	staged := tok.stagedSize()
	mark, s3 := ids(up)
	if len(tok.ETags) == 0 {
		if err := m.checkUpload(ctx, up); err != nil {
			return err
		}
		sr := m.stagedReader(ctx, up, tok.First, tok.Sizes)
		defer sr.Close()
		if _, err := m.at(ctx).PutObject(ctx, m.bucket, up.Key, sr, staged, "", "", putOptions()); err != nil {
			return wrap(err, "upload %s of %q: complete", up.ID, up.Key)
		}
		err := m.at(ctx).AbortMultipartUpload(ctx, m.bucket, up.Key, s3)
		if err != nil && !isNotFound(err) {
			return wrap(err, "upload %s of %q: complete: published, but aborting the multipart upload", up.ID, up.Key)
		}
		_ = m.removeStaging(ctx, mark)
		return nil
	}
	parts := make([]minio.CompletePart, len(tok.ETags), len(tok.ETags)+1)
	for i, etag := range tok.ETags {
		if etag == "" {
			return fmt.Errorf("s3mirror: upload %s of %q: complete: part %d has no ETag; the Part was not settled", up.ID, up.Key, i+1)
		}
		parts[i] = minio.CompletePart{PartNumber: i + 1, ETag: etag}
	}
	if staged > 0 {
		sr := m.stagedReader(ctx, up, tok.First, tok.Sizes)
		defer sr.Close()
		pn := len(parts) + 1
		etag, err := m.putPart(ctx, up, pn, sr, staged)
		if err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: pn, ETag: etag})
	}
	if _, err := m.at(ctx).CompleteMultipartUpload(ctx, m.bucket, up.Key, s3, parts, putOptions()); err != nil {
		return wrap(err, "upload %s of %q: complete", up.ID, up.Key)
	}
	_ = m.removeStaging(ctx, mark)
	return nil
}

// Abort aborts the multipart upload, if it started, and removes its
// marker and staging objects.
func (m *Mirror) Abort(ctx context.Context, up mirrors.Upload) error {
	var errs []error
	mark, s3 := ids(up)
	if s3 != "" {
		if err := m.at(ctx).AbortMultipartUpload(ctx, m.bucket, up.Key, s3); err != nil {
			errs = append(errs, wrap(err, "abort upload %s of %q", up.ID, up.Key))
		}
	}
	if err := m.removeStaging(ctx, mark); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeStaging removes every staging object of the upload.
func (m *Mirror) removeStaging(ctx context.Context, id string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objs := make(chan minio.ObjectInfo)
	listErr := make(chan error, 1)
	go func() {
		defer close(objs)
		for o := range m.at(ctx).Client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Prefix: stagingDir(id), Recursive: true}) {
			if o.Err != nil {
				listErr <- o.Err
				return
			}
			select {
			case objs <- o:
			case <-ctx.Done():
				listErr <- ctx.Err()
				return
			}
		}
		listErr <- nil
	}()
	var errs []error
	for e := range m.at(ctx).RemoveObjects(ctx, m.bucket, objs, minio.RemoveObjectsOptions{}) {
		errs = append(errs, fmt.Errorf("%s: %w", e.ObjectName, e.Err))
	}
	cancel()
	if err := <-listErr; err != nil && len(errs) == 0 {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3mirror: removing staged chunks of upload %s: %w", id, err)
	}
	return nil
}

// Open returns length bytes of the object from off, or the rest of it if
// length < 0. A range reaching past the end is cut at the end; off past
// the end is an error. A client's read of spliceMin bytes or more from a
// plain-HTTP mirror returns a mirrors.Splicer (see splice.go).
func (m *Mirror) Open(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("s3mirror: open %q: negative offset %d", key, off)
	}
	if length == 0 {
		return m.openEmpty(ctx, key, off)
	}
	if m.plain && length >= spliceMin && !mirrors.IsPatient(ctx) {
		rc, err := m.openRaw(ctx, key, off, length)
		if !errors.Is(err, errNotSpliceable) {
			return rc, err
		}
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err := opts.SetRange(off, off+length-1)
		if err != nil {
			return nil, fmt.Errorf("s3mirror: open %q: %w", key, err)
		}
	case off > 0:
		if err := opts.SetRange(off, 0); err != nil {
			return nil, fmt.Errorf("s3mirror: open %q: %w", key, err)
		}
	}
	rc, _, _, err := m.at(ctx).GetObject(ctx, m.bucket, key, opts)
	if errorCode(err) == "InvalidRange" {
		// S3 refuses a range starting at the end, even of an empty object.
		return m.openEmpty(ctx, key, off)
	}
	if err != nil {
		return nil, wrap(err, "open %q", key)
	}
	return rc, nil
}

// openEmpty returns an empty reader if off is at most the object's size.
func (m *Mirror) openEmpty(ctx context.Context, key string, off int64) (io.ReadCloser, error) {
	info, err := m.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if off > info.Size {
		return nil, fmt.Errorf("s3mirror: open %q: offset %d past the end (%d bytes)", key, off, info.Size)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// Stat returns the object's size and last-modified time.
func (m *Mirror) Stat(ctx context.Context, key string) (mirrors.Info, error) {
	if err := checkKey(key); err != nil {
		return mirrors.Info{}, err
	}
	oi, err := m.at(ctx).StatObject(ctx, m.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return mirrors.Info{}, wrap(err, "stat %q", key)
	}
	return mirrors.Info{Size: oi.Size, Modified: oi.LastModified}, nil
}

// Delete removes the object.
func (m *Mirror) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := m.at(ctx).RemoveObject(ctx, m.bucket, key, minio.RemoveObjectOptions{})
	if err != nil && !isNotFound(err) {
		return wrap(err, "delete %q", key)
	}
	return nil
}

// checkKey refuses empty keys and keys under StagingPrefix.
func checkKey(key string) error {
	if key == "" {
		return errors.New("s3mirror: empty key")
	}
	if strings.HasPrefix(key, StagingPrefix) {
		return fmt.Errorf("s3mirror: invalid key %q: the prefix %q is reserved", key, StagingPrefix)
	}
	return nil
}

func stagingDir(id string) string { return StagingPrefix + id + "/" }

func stagingKey(id string, n int) string { return stagingDir(id) + strconv.Itoa(n) }

// beganKey is the key of the marker of upload id of key.
func beganKey(id, key string) string { return stagingDir(id) + beganDir + key }

// beganDir is what comes between an upload's staging directory and the
// key in its marker's key.
const beganDir = "began/"

// errorCode returns the S3 error code in err, or "".
func errorCode(err error) string {
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return er.Code
	}
	return ""
}

// isNotFound reports whether err says the key, upload or bucket is missing.
func isNotFound(err error) bool {
	switch errorCode(err) {
	case minio.NoSuchKey, minio.NoSuchUpload, minio.NoSuchBucket:
		return true
	}
	return false
}

// wrap prefixes err with a description made by format and args, and makes
// it wrap mirrors.ErrNotFound too if S3 reported something missing.
func wrap(err error, format string, args ...any) error {
	msg := "s3mirror: " + fmt.Sprintf(format, args...)
	if isNotFound(err) {
		return fmt.Errorf("%s: %w: %w", msg, mirrors.ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
