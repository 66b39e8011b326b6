package transfer

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"gocloud.dev/blob"
)

// Provider supplies the few things the portable blob API cannot do, without
// this package knowing which store it talks to. handlers/store implements it
// per provider through the drivers' As functions. The zero Provider (nil)
// is valid: no version pinning, MD5 verification only.
type Provider interface {
	// PinVersion returns a ReaderOptions.BeforeRead function that makes a
	// (ranged) read fail with a gcerrors.FailedPrecondition error unless the
	// object is still the version described by attrs (S3/Azure: If-Match on
	// the ETag; GCS: the generation). It returns nil when it cannot pin.
	PinVersion(attrs *blob.Attributes) func(as func(any) bool) error

	// CRC32C returns the object's CRC32C (Castagnoli) checksum, when the
	// store keeps one, from the As function of a blob.ListObject or of
	// blob.Attributes.
	CRC32C(as func(any) bool) (uint32, bool)

	// WriterOptions fills provider-specific upload options (for example the
	// checksum algorithm) through a blob.WriterOptions.BeforeWrite function;
	// nil when there is nothing to add.
	BeforeWrite() func(as func(any) bool) error
}

// ETagDigests is implemented by Providers whose listed MD5 (read from an
// ETag) is not always one of the content: S3's of an object encrypted with
// KMS or a customer's key. The listing cannot tell; the object's attributes
// and a reader's answer can.
type ETagDigests interface {
	// MD5Usable reports whether the object's MD5 may be checked against
	// its content, from the As function of its attributes or of a reader.
	MD5Usable(as func(any) bool) bool
}

// UploadDigests is implemented by Providers whose store answers an upload
// with the MD5 it computed of what it received (S3's ETag of a single
// request, GCS's object resource, Azure's answer to a Put Blob). An upload
// so answered is verified there and then, without reading the object's
// attributes back or listing its prefix.
type UploadDigests interface {
	// WatchUpload returns a context to upload with, and a function that,
	// once the upload returned, gives the MD5 the store reported for it: nil
	// when it reported none (a multipart upload, an encrypted object). opts
	// are the options the upload is sent with: the provider may chain its
	// own BeforeWrite to them, to read the writer's answer.
	WatchUpload(ctx context.Context, opts *blob.WriterOptions) (context.Context, func() []byte)
}

// FileUploader is implemented by Providers that upload a large file in
// parts read straight from it (S3's multipart upload), where the blob
// writer copies every part into a buffer of its own: parts can then be
// large, fewer requests and less work for the store, at no cost in memory.
type FileUploader interface {
	// UploadFile uploads the first size bytes of f to key in parts of
	// partSize bytes, conc at a time, calling sent with the size of each
	// part sent. It returns false, having sent nothing, when it cannot
	// upload to b, this key or with these options: the blob writer must.
	UploadFile(ctx context.Context, b *blob.Bucket, key string, f *os.File, size int64, opts *blob.WriterOptions,
		partSize int64, conc int, sent func(int64)) (bool, error)
}

// BytesUploader is implemented by Providers that send a small file held in
// memory as one request from the calling goroutine, with less work than
// the blob writer's (S3's PutObject).
type BytesUploader interface {
	// UploadBytes uploads data to key with opts, whose ContentMD5, when
	// set, is data's MD5 for the caller to compare with what the store
	// reports (UploadDigests). It returns false, having sent nothing, when
	// it cannot upload to b, this key or with these options: the blob
	// writer must.
	UploadBytes(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) (bool, error)
}

// StreamUploader is implemented by Providers that send a stream in one
// call of their own where the blob writer would not do (Azure: gocloud's
// writer loses the store's error when an upload fails).
type StreamUploader interface {
	// UploadStream uploads what r yields to key with opts, in blocks of
	// blockSize bytes, conc at a time; the object keeps opts.ContentMD5 as
	// its MD5, for the caller to check against what r yielded. It returns
	// false, having read and sent nothing, when it cannot upload to b, this
	// key or with these options: the blob writer must.
	UploadStream(ctx context.Context, b *blob.Bucket, key string, r io.Reader, opts *blob.WriterOptions, blockSize int64, conc int) (bool, error)
}

// WholeReader is implemented by Providers that read a whole object with
// less work per request than the blob reader (S3: one signed GET, without
// the SDK's middleware), which matters when the objects are many and small.
type WholeReader interface {
	// ReadWhole opens key of b for reading from its start. It returns
	// false, having sent nothing, when it cannot read from b or this key:
	// the blob reader must.
	ReadWhole(ctx context.Context, b *blob.Bucket, key string) (ObjectReader, bool, error)
}

// RealKeys is implemented by Providers for stores whose blob API cannot
// address every key the store holds: gocloud's drivers escape some
// characters and sequences on every request and unescape them in listings,
// so an object another tool stored under such a key is listed, or read,
// under another name.
type RealKeys interface {
	// RealKey returns the store's own key of a listed object (from its As
	// function), and whether it differs from what the blob API addresses
	// under lo.Key.
	RealKey(lo *blob.ListObject) (real string, differs bool)
	// RealPrefix returns the key prefix the blob API sends for prefix: the
	// store's keys listed under prefix start with it.
	RealPrefix(prefix string) string
	// OpenReal opens the object whose store key is real (listed as key)
	// for reading from its start.
	OpenReal(ctx context.Context, b *blob.Bucket, key, real string) (ObjectReader, error)
}

// WriterTuner is implemented by Providers that adjust a blob writer's
// options once its part size and concurrency are set (S3: a cancelled
// upload's multipart upload is aborted with a context of its own, not the
// cancelled one, which would fail and leave its parts billed).
type WriterTuner interface {
	TuneWriter(opts *blob.WriterOptions)
}

// UploadJournal records the multipart uploads a Provider begins and ends,
// so that one a killed run left unfinished (not listed, but billed) can be
// aborted by the next run. It is handed to the Provider in the context
// (WithUploadJournal).
type UploadJournal interface {
	Begun(key, id string)
	// Ended: completed, or aborted.
	Ended(key, id string)
}

type journalKey struct{}

type abortBaseKey struct{}

// AbortBaseOf returns the context a failed upload's abort should outlive
// by little: the upload's own, which goes on after the writer's context
// (ctx) ends when the upload is abandoned; ctx itself where none is kept.
func AbortBaseOf(ctx context.Context) context.Context {
	if base, ok := ctx.Value(abortBaseKey{}).(context.Context); ok {
		return base
	}
	return ctx
}

// WithUploadJournal returns ctx carrying j for the uploads made with it.
func WithUploadJournal(ctx context.Context, j UploadJournal) context.Context {
	return context.WithValue(ctx, journalKey{}, j)
}

// JournalOf returns the UploadJournal ctx carries, or nil.
func JournalOf(ctx context.Context) UploadJournal {
	j, _ := ctx.Value(journalKey{}).(UploadJournal)
	return j
}

// UploadAborter is implemented by Providers whose multipart uploads an
// UploadJournal records: it aborts one a killed run left unfinished.
type UploadAborter interface {
	AbortUpload(ctx context.Context, b *blob.Bucket, key, id string) error
}

// ObjectReader reads an object's content; *blob.Reader is one.
type ObjectReader interface {
	io.ReadCloser
	Size() int64        // the object's size in bytes
	ModTime() time.Time // its modification time; zero when unknown
}

// ErrChecksumMismatch marks the error of an ObjectReader whose content did
// not match a checksum the store sent with it: the download is then tried
// once more, and fails as an integrity error if it does not match again.
var ErrChecksumMismatch = errors.New("checksum mismatch")
