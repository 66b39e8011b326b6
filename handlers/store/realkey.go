package store

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob"

	"github.com/initializer/initializer/transfer"
)

// gocloud's drivers escape some characters and sequences of keys on every
// request ("../" → "..__0x2f__", "%" on Azure → "__0x25__", …) and unescape
// them in listings, so that any key it writes reads back. A key another
// tool wrote with them is listed under another name, or read under another
// name: the object cannot be read through the blob API. The providers
// below implement transfer.RealKeys: they read the store's own key from a
// listed object and read such objects under that key.

// escapedBy reports whether a gocloud driver would send key otherwise than
// as it is, special being the driver's own characters to escape. A key
// holding "__0x" is counted in whether or not it is a whole escape
// sequence: reading it by its real key is right either way.
func escapedBy(key string, special func(r rune) bool) bool {
	return !utf8.ValidString(key) || strings.Contains(key, "../") || strings.Contains(key, "__0x") ||
		strings.ContainsFunc(key, special)
}

// realKey returns the store's key of a listed object and whether it
// differs from what the blob API would address under lo.Key.
func realKey(lo *blob.ListObject, real string, special func(rune) bool) (string, bool) {
	return real, real != lo.Key || escapedBy(real, special)
}

func s3Special(r rune) bool { return r < 32 }

// RealKey implements transfer.RealKeys.
func (s3Provider) RealKey(lo *blob.ListObject) (string, bool) {
	var o types.Object
	if !lo.As(&o) || o.Key == nil {
		return lo.Key, false
	}
	return realKey(lo, *o.Key, s3Special)
}

// OpenReal implements transfer.RealKeys: gocloud's GetObject request, its
// key replaced by the real one before it is sent.
func (s3Provider) OpenReal(ctx context.Context, b *blob.Bucket, key, real string) (transfer.ObjectReader, error) {
	return b.NewReader(ctx, key, &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		var in *s3.GetObjectInput
		if !as(&in) {
			return errors.New("s3: cannot read by the store's key: the driver offers no *s3.GetObjectInput")
		}
		in.Key = aws.String(real)
		return nil
	}})
}

func gcsSpecial(r rune) bool { return r == '\n' || r == '\r' }

// RealKey implements transfer.RealKeys.
func (gcsProvider) RealKey(lo *blob.ListObject) (string, bool) {
	var oa storage.ObjectAttrs
	if !lo.As(&oa) || oa.Name == "" {
		return lo.Key, false
	}
	return realKey(lo, oa.Name, gcsSpecial)
}

// OpenReal implements transfer.RealKeys: gocloud's read, its object handle
// replaced by one for the real name before the request is made.
func (p gcsProvider) OpenReal(ctx context.Context, b *blob.Bucket, key, real string) (transfer.ObjectReader, error) {
	var client *storage.Client
	if !b.As(&client) {
		return nil, errors.New("gcs: cannot read by the store's key: the bucket offers no *storage.Client")
	}
	return b.NewReader(ctx, key, &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
		var obj **storage.ObjectHandle
		if !as(&obj) {
			return errors.New("gcs: cannot read by the store's key: the driver offers no *storage.ObjectHandle")
		}
		*obj = client.Bucket(p.name).Object(real)
		return nil
	}})
}

// azureSpecial are the characters gocloud's Azure driver escapes (a
// trailing slash too, which only folder markers have: they are not read).
func azureSpecial(r rune) bool {
	return r < 32 || r == '"' || r == '#' || r == '%' || r == '?' || r == '\\' || r == 127
}

// RealKey implements transfer.RealKeys.
func (azureProvider) RealKey(lo *blob.ListObject) (string, bool) {
	var item container.BlobItem
	if !lo.As(&item) || item.Name == nil {
		return lo.Key, false
	}
	return realKey(lo, *item.Name, azureSpecial)
}

// OpenReal implements transfer.RealKeys: gocloud's Azure reader names the
// blob before any hook runs, so the read goes through the container client
// gocloud uses.
func (azureProvider) OpenReal(ctx context.Context, b *blob.Bucket, _, real string) (transfer.ObjectReader, error) {
	var cc *container.Client
	if !b.As(&cc) {
		return nil, errors.New("azure: cannot read by the store's key: the bucket offers no *container.Client")
	}
	resp, err := cc.NewBlobClient(real).DownloadStream(ctx, nil)
	if err != nil {
		return nil, err
	}
	r := &azureReader{ReadCloser: resp.Body, size: -1}
	if resp.ContentLength != nil {
		r.size = *resp.ContentLength
	}
	if resp.LastModified != nil {
		r.mod = *resp.LastModified
	}
	return r, nil
}

// azureReader is a blob's download as a transfer.ObjectReader.
type azureReader struct {
	io.ReadCloser
	size int64
	mod  time.Time
}

func (r *azureReader) Size() int64        { return r.size }
func (r *azureReader) ModTime() time.Time { return r.mod }
