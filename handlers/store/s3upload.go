package store

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"

	"github.com/initializer/initializer/transfer"
)

// UploadFile uploads a large file as an S3 multipart upload whose parts
// are read straight from the file (transfer.FileUploader). gocloud's writer
// goes through the SDK's transfer manager, which copies every part into a
// buffer of its own: memory grows with part size × concurrency, so parts
// stay small, and many small parts cost the store more than a few large
// ones. Here a part is a section of the file: the SDK hashes it for the
// request signature where it needs to (plain http) by reading it, then
// sends it, with no copy kept.
//
// It declines (false, nil: nothing was sent) what only gocloud's writer
// handles as gocloud would: another bucket, a key or metadata gocloud
// would escape, options this path does not carry. (openS3 gives the bucket
// no server-side encryption settings, so there are none to carry.)
func (p s3Provider) UploadFile(ctx context.Context, b *blob.Bucket, key string, f *os.File, size int64,
	opts *blob.WriterOptions, partSize int64, conc int, sent func(int64)) (bool, error) {
	client := p.client(b, key, opts)
	if client == nil {
		return false, nil
	}
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return true, err
	}
	md, contentType, alg := putParams(client, opts, head[:n])
	create, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(p.name), Key: aws.String(key), ContentType: aws.String(contentType), Metadata: md,
		ChecksumAlgorithm: alg,
	})
	if err != nil {
		return true, err
	}
	id := aws.ToString(create.UploadId)
	journal := transfer.JournalOf(ctx)
	if journal != nil {
		journal.Begun(key, id)
	}
	parts, err := uploadParts(ctx, client, p.name, key, create.UploadId, f, size, partSize, conc, alg, sent)
	if err == nil && !transfer.SourceUnchanged(ctx) {
		// Written while its parts were read: they may be no version of it.
		err = fmt.Errorf("before completing the upload: %w", transfer.ErrChanged)
	}
	if err == nil {
		_, err = client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: aws.String(p.name), Key: aws.String(key), UploadId: create.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
	}
	ended := err == nil
	if err != nil {
		// Leave no parts behind (they are billed), even when ctx has ended.
		actx, cancel := abortContext(ctx)
		defer cancel()
		ended = p.AbortUpload(actx, b, key, id) == nil
	}
	if journal != nil && ended {
		journal.Ended(key, id)
	}
	return true, err
}

// abortAfterEnd is how long the abort of a failed multipart upload may
// take once the upload's context has ended (the sidecar's grace ran out):
// the pod's termination must not wait on a store that does not answer.
// An upload not aborted stays in the upload journal, for the next sidecar.
const abortAfterEnd = 3 * time.Second

// abortContext is the context of the abort of a failed upload whose
// context is ctx: it outlives ctx, which may have ended, but by
// abortAfterEnd at most (and 30 s in all).
func abortContext(ctx context.Context) (context.Context, context.CancelFunc) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(abortAfterEnd, cancel) })
	return actx, func() { stop(); cancel() }
}

// journaledClient is the S3 client of gocloud's writer (through the SDK's
// transfer manager), recording the multipart uploads it begins in the
// upload journal of the upload's context, and their end (completed or
// aborted). The transfer manager aborts with a context of its own (30 s
// from the failure), which carries no journal and does not end with the
// upload's: each upload's journal and context are kept by its id, and its
// abort ends abortAfterEnd after the upload's context, as UploadFile's.
type journaledClient struct{ *s3.Client }

type writerUpload struct {
	ctx     context.Context
	journal transfer.UploadJournal // nil: none kept
}

var writerUploads sync.Map // upload id → writerUpload, until completed or aborted

func (c journaledClient) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	out, err := c.Client.CreateMultipartUpload(ctx, in, opts...)
	if err == nil && out.UploadId != nil {
		u := writerUpload{ctx: transfer.AbortBaseOf(ctx), journal: transfer.JournalOf(ctx)}
		writerUploads.Store(*out.UploadId, u)
		if u.journal != nil {
			u.journal.Begun(aws.ToString(in.Key), *out.UploadId)
		}
	}
	return out, err
}

func (c journaledClient) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	out, err := c.Client.CompleteMultipartUpload(ctx, in, opts...)
	if err == nil { // else an abort follows
		if u, ok := writerUploads.LoadAndDelete(aws.ToString(in.UploadId)); ok && u.(writerUpload).journal != nil {
			u.(writerUpload).journal.Ended(aws.ToString(in.Key), aws.ToString(in.UploadId))
		}
	}
	return out, err
}

func (c journaledClient) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	v, known := writerUploads.LoadAndDelete(aws.ToString(in.UploadId))
	u, _ := v.(writerUpload)
	if known {
		actx, cancel := abortContext(u.ctx)
		defer cancel()
		var stop func() bool
		ctx, stop = withDone(ctx, actx)
		defer stop()
	}
	out, err := c.Client.AbortMultipartUpload(ctx, in, opts...)
	var nsu *types.NoSuchUpload
	if (err == nil || errors.As(err, &nsu)) && u.journal != nil {
		u.journal.Ended(aws.ToString(in.Key), aws.ToString(in.UploadId))
	}
	return out, err
}

// withDone returns ctx, ended also when other ends.
func withDone(ctx, other context.Context) (context.Context, func() bool) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() bool { cancel(); return stop() }
}

// AbortUpload implements transfer.UploadAborter: an upload already gone
// (completed, or aborted by the store's lifecycle rules) is no error. key
// is the store's own key (a journal records it as the store has it).
func (p s3Provider) AbortUpload(ctx context.Context, b *blob.Bucket, key, id string) error {
	var client *s3.Client
	if b != p.bucket || p.name == "" || !b.As(&client) {
		return fmt.Errorf("the multipart upload of %q cannot be reached", key)
	}
	_, err := client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(p.name), Key: aws.String(key), UploadId: aws.String(id)})
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsu) {
		return nil
	}
	return err
}

// UploadBytes sends a small file held in memory as one PutObject, from the
// calling goroutine (transfer.BytesUploader): one signed PUT (PutWhole)
// where it can be sent as the SDK would send it, else through the SDK's
// PutObject. gocloud's writer would start a goroutine of its own for it,
// whose stack grows anew through the SDK's middleware on every request, and
// pass the bytes through a pipe into the transfer manager. The store's
// answer carries the MD5 of what it stored, which WatchUpload gives the
// caller as for any PutObject. It declines what UploadFile declines.
func (p s3Provider) UploadBytes(ctx context.Context, b *blob.Bucket, key string, data []byte, opts *blob.WriterOptions) (bool, error) {
	if used, err := p.PutWhole(ctx, b, key, data, opts); used {
		return true, err
	}
	client := p.client(b, key, withoutMD5(opts))
	if client == nil {
		return false, nil
	}
	md, contentType, alg := putParams(client, opts, data[:min(len(data), 512)])
	_, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(p.name), Key: aws.String(key), ContentType: aws.String(contentType), Metadata: md,
		ChecksumAlgorithm: alg, ContentLength: aws.Int64(int64(len(data))), Body: bytes.NewReader(data),
	})
	return true, err
}

// withoutMD5 returns opts without its ContentMD5: the uploads of small files
// check it against the store's answer instead of sending it.
func withoutMD5(opts *blob.WriterOptions) *blob.WriterOptions {
	o := *opts
	o.ContentMD5 = nil
	return &o
}

// client returns the S3 client to upload key to b with opts directly, or
// nil when only gocloud's writer handles them as gocloud would: another
// bucket, a key or metadata gocloud would escape, options these paths do
// not carry.
func (p s3Provider) client(b *blob.Bucket, key string, opts *blob.WriterOptions) *s3.Client {
	if !plainOptions(opts) {
		return nil
	}
	return p.keyClient(b, key)
}

// keyClient returns the S3 client to reach key of b directly, or nil when
// only gocloud handles them as gocloud would: another bucket, a key gocloud
// would escape.
func (p s3Provider) keyClient(b *blob.Bucket, key string) *s3.Client {
	var client *s3.Client
	if b != p.bucket || p.name == "" || !b.As(&client) || !plainKey(key) {
		return nil
	}
	return client
}

// putParams returns the metadata, content type and checksum algorithm of
// an upload as gocloud's writer would send them, head being the first
// bytes of the content.
func putParams(client *s3.Client, opts *blob.WriterOptions, head []byte) (map[string]string, string, types.ChecksumAlgorithm) {
	md := make(map[string]string, len(opts.Metadata))
	for k, v := range opts.Metadata {
		md[k] = url.PathEscape(v) // as gocloud's writer stores values
	}
	contentType := opts.ContentType
	if contentType == "" {
		contentType = http.DetectContentType(head) // as gocloud's writer does
	}
	// Checksums as the transfer manager asks for them: CRC32 unless the
	// client computes checksums only when required (custom endpoints).
	var alg types.ChecksumAlgorithm
	if client.Options().RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired {
		alg = types.ChecksumAlgorithmCrc32
	}
	return md, contentType, alg
}

// uploadParts sends the file's parts, conc at a time, and returns them in
// order for CompleteMultipartUpload.
func uploadParts(ctx context.Context, client *s3.Client, bucket, key string, id *string, f *os.File, size, partSize int64,
	conc int, alg types.ChecksumAlgorithm, sent func(int64)) ([]types.CompletedPart, error) {
	count := int((size + partSize - 1) / partSize)
	if count > 10000 {
		return nil, fmt.Errorf("%d parts of %d bytes: S3 allows 10,000", count, partSize)
	}
	parts := make([]types.CompletedPart, count)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(conc, 1))
	for i := range count {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		g.Go(func() error {
			in := &s3.UploadPartInput{
				Bucket: aws.String(bucket), Key: aws.String(key), UploadId: id,
				PartNumber: aws.Int32(int32(i + 1)), ContentLength: aws.Int64(n), ChecksumAlgorithm: alg,
				Body: io.NewSectionReader(f, off, n),
			}
			if alg == types.ChecksumAlgorithmCrc32 {
				// The part's CRC32 goes in a header, computed here: over
				// TLS the SDK would send it as the trailer of an
				// aws-chunked body in one chunk as long as the part, and
				// MinIO refuses chunks over 16 MiB ("chunk too big").
				c := crc32.NewIEEE()
				if _, err := io.Copy(c, io.NewSectionReader(f, off, n)); err != nil {
					return err
				}
				in.ChecksumCRC32 = aws.String(base64.StdEncoding.EncodeToString(c.Sum(nil)))
			}
			out, err := client.UploadPart(gctx, in)
			if err != nil {
				if contentChanged(err) {
					// The part was read twice (its hash or checksum,
					// then the body sent) and differed: the file changed.
					return fmt.Errorf("part %d: %w (%v)", i+1, transfer.ErrChanged, err)
				}
				return err
			}
			parts[i] = types.CompletedPart{
				PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag,
				ChecksumCRC32: out.ChecksumCRC32, ChecksumCRC32C: out.ChecksumCRC32C,
				ChecksumCRC64NVME: out.ChecksumCRC64NVME, ChecksumSHA1: out.ChecksumSHA1, ChecksumSHA256: out.ChecksumSHA256,
			}
			sent(n)
			return nil
		})
	}
	return parts, g.Wait()
}

// contentChanged reports the store's refusal of a body that does not match
// the hash or checksum sent with it: read from a file, the file changed
// between the two reads.
func contentChanged(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "XAmzContentSHA256Mismatch", "BadDigest", "XAmzContentChecksumMismatch", "InvalidChecksum":
		return true
	}
	return false
}

// plainKey reports whether gocloud's S3 driver would store key as it is
// (it escapes control characters, "../" and text that looks like its own
// escapes).
func plainKey(key string) bool {
	return utf8.ValidString(key) && gocloudEscape(key, s3Rule) == key
}

// plainOptions reports whether opts hold nothing but metadata whose keys
// gocloud's S3 driver would not escape, and a content type.
func plainOptions(opts *blob.WriterOptions) bool {
	if opts.BeforeWrite != nil || opts.ContentMD5 != nil || opts.CacheControl != "" || opts.ContentDisposition != "" ||
		opts.ContentEncoding != "" || opts.ContentLanguage != "" || opts.IfNotExist {
		return false
	}
	for k := range opts.Metadata {
		if k == "" || url.PathEscape(k) != k || strings.ContainsAny(k, "@:=") || strings.Contains(k, "__0x") {
			return false
		}
	}
	return true
}
