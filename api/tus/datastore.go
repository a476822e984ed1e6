package tus

import (
	"context"
	"io"
	"maps"
	"mime"
	"strings"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/acestash/acestash/chunks"
	"github.com/acestash/acestash/store"
)

// datastore keeps tus uploads as stream uploads of chunks: each upload is
// a session in the store, its bytes on the mirrors it selected.
type datastore struct {
	cfg   Config
	locks *locker
}

// Upload-Metadata keys acestash reads; every key is told back on HEAD but
// the password.
const (
	metaName     = "filename"
	metaType     = "filetype"
	metaMirrors  = "mirrors"
	metaPassword = "password"
	metaExpires  = "expires"       // acestash: chunks.TermsFor
	metaMaxDL    = "max_downloads" // acestash: chunks.TermsFor
)

// NewUpload creates the session of an upload for the request's account.
func (d *datastore) NewUpload(ctx context.Context, info handler.FileInfo) (handler.Upload, error) {
	c := callOf(ctx)
	meta := maps.Clone(info.MetaData)
	spec := chunks.StreamSpec{
		Account: c.account, Name: meta[metaName], Password: meta[metaPassword],
		Size: info.Size, Partial: info.IsPartial,
	}
	terms, err := chunks.TermsFor(c.account, meta[metaExpires], meta[metaMaxDL], 0, d.cfg.Clock())
	if err != nil {
		return nil, tusError(ctx, d.cfg.Log, err)
	}
	spec.Terms = terms
	delete(meta, metaPassword)
	spec.Meta = meta
	if info.SizeIsDeferred {
		spec.Size = -1
	}
	if t := meta[metaType]; t != "" {
		if _, _, err := mime.ParseMediaType(t); err == nil {
			spec.Type = t
		}
	}
	for _, id := range strings.Split(meta[metaMirrors], ",") {
		if id = strings.TrimSpace(id); id != "" {
			spec.Mirrors = append(spec.Mirrors, id)
		}
	}
	sess, err := d.cfg.Chunks.Create(ctx, spec)
	if err != nil {
		return nil, tusError(ctx, d.cfg.Log, err)
	}
	return d.upload(ctx, c.account, sess), nil
}

// GetUpload returns the request's account's upload id.
func (d *datastore) GetUpload(ctx context.Context, id string) (handler.Upload, error) {
	c := callOf(ctx)
	sess, err := d.cfg.Chunks.Stream(ctx, c.account, id)
	if err != nil {
		return nil, tusError(ctx, d.cfg.Log, err)
	}
	return d.upload(ctx, c.account, sess), nil
}

func (d *datastore) upload(ctx context.Context, a store.Account, sess store.Session) *upload {
	u := &upload{d: d, a: a, sess: sess, call: callOf(ctx)}
	u.call.saw(sess, d.cfg.Idle)
	return u
}

func (d *datastore) AsTerminatableUpload(u handler.Upload) handler.TerminatableUpload {
	return u.(*upload)
}

func (d *datastore) AsLengthDeclarableUpload(u handler.Upload) handler.LengthDeclarableUpload {
	return u.(*upload)
}

func (d *datastore) AsConcatableUpload(u handler.Upload) handler.ConcatableUpload {
	return u.(*upload)
}

// upload is one tus upload as a request sees it.
type upload struct {
	d    *datastore
	a    store.Account
	sess store.Session
	call *call
}

// set keeps the session after a call and reports it to the response.
func (u *upload) set(sess store.Session) {
	if sess.UploadKey == "" {
		return // the call failed before it read the upload
	}
	u.sess = sess
	u.call.saw(sess, u.d.cfg.Idle)
}

func (u *upload) GetInfo(ctx context.Context) (handler.FileInfo, error) {
	s := u.sess
	info := handler.FileInfo{
		ID: s.UploadKey, Size: s.Total, Offset: s.Held, MetaData: s.Meta,
		IsPartial: s.Partial, IsFinal: len(s.Joined) > 0, PartialUploads: s.Joined,
	}
	if s.Total < 0 {
		info.Size, info.SizeIsDeferred = 0, true
	}
	return info, nil
}

// WriteChunk appends the request's body under the request's lock. The
// bytes that arrived before a body was cut off are kept.
func (u *upload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	holder, ok := u.d.locks.holder(u.sess.UploadKey)
	if !ok {
		return 0, errUnavailable("the upload is not locked by this request; retry")
	}
	sess, err := u.run(ctx, func() (store.Session, error) {
		return u.d.cfg.Chunks.Append(ctx, u.a, u.sess.UploadKey, holder, offset, body{src, u.call})
	})
	return max(sess.Held-offset, 0), err
}

// run runs a call that may outlast the request's write deadline (see
// call.keep), keeps the session it leaves and gives tusd its error.
func (u *upload) run(ctx context.Context, fn func() (store.Session, error)) (store.Session, error) {
	var sess store.Session
	err := u.call.keep(func() error {
		var err error
		sess, err = fn()
		return err
	})
	u.set(sess)
	return sess, tusError(ctx, u.d.cfg.Log, err)
}

// GetReader is not offered: downloads are at /m/<slug>.
func (u *upload) GetReader(ctx context.Context) (io.ReadCloser, error) {
	return nil, handler.ErrNotImplemented
}

// FinishUpload publishes the file, if the last write has not already.
func (u *upload) FinishUpload(ctx context.Context) error {
	if u.sess.Done {
		return nil
	}
	return u.d.locks.with(ctx, u.sess.UploadKey, func(holder string) error {
		_, err := u.run(ctx, func() (store.Session, error) {
			return u.d.cfg.Chunks.Finish(ctx, u.a, u.sess.UploadKey, holder)
		})
		return err
	})
}

// Terminate aborts the upload on every mirror and forgets it.
func (u *upload) Terminate(ctx context.Context) error {
	return u.d.locks.with(ctx, u.sess.UploadKey, func(holder string) error {
		return tusError(ctx, u.d.cfg.Log, u.d.cfg.Chunks.Cancel(ctx, u.a, u.sess.UploadKey, holder))
	})
}

func (u *upload) DeclareLength(ctx context.Context, length int64) error {
	return u.d.locks.with(ctx, u.sess.UploadKey, func(holder string) error {
		sess, err := u.d.cfg.Chunks.Declare(ctx, u.a, u.sess.UploadKey, holder, length)
		u.set(sess)
		return tusError(ctx, u.d.cfg.Log, err)
	})
}

// ConcatUploads joins the partial uploads into this one and publishes it.
func (u *upload) ConcatUploads(ctx context.Context, partials []handler.Upload) error {
	keys := make([]string, len(partials))
	for i, p := range partials {
		keys[i] = p.(*upload).sess.UploadKey
	}
	return u.d.locks.with(ctx, u.sess.UploadKey, func(holder string) error {
		_, err := u.run(ctx, func() (store.Session, error) {
			return u.d.cfg.Chunks.Join(ctx, u.a, u.sess.UploadKey, holder, keys)
		})
		return err
	})
}
