package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

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
// them in listings, so that any key it writes reads back under the name it
// was written with. A key another tool wrote with such characters, or with
// text that looks like an escape, is listed under a name that the driver
// sends as another key: the object cannot be read through the blob API.
// The providers below implement transfer.RealKeys: they read the store's
// own key from a listed object and read such objects under that key.

// escapeRule says whether a driver escapes the rune at r[i] of key.
type escapeRule func(key string, r []rune, i int) bool

// gocloudEscape returns the key a gocloud driver sends for key: its
// internal/escape.HexEscape with the driver's rule, which also escapes the
// start of any text that looks like an escape ("__0x41__").
// As HexEscape, it returns key itself when nothing is to be escaped (an
// invalid UTF-8 key included: only escaping rewrites it).
// It runs for every listed object and every upload: the common key, with
// nothing to escape, costs one pass and no string.
func gocloudEscape(key string, rule escapeRule) string {
	r := []rune(key)
	first := -1
	for i := range r {
		if rule(key, r, i) || escapeLike(r, i) {
			first = i
			break
		}
	}
	if first < 0 {
		return key
	}
	var b strings.Builder
	b.WriteString(string(r[:first]))
	for i := first; i < len(r); i++ {
		if rule(key, r, i) || escapeLike(r, i) {
			fmt.Fprintf(&b, "__%#x__", r[i])
		} else {
			b.WriteRune(r[i])
		}
	}
	return b.String()
}

// escapeLike reports whether r[i:] starts with "__0x<hex>__", as
// gocloud's HexUnescape would read it.
func escapeLike(r []rune, i int) bool {
	if len(r)-i < 4 || string(r[i:i+4]) != "__0x" {
		return false
	}
	j := i + 4
	for j < len(r) && r[j] != '_' {
		j++
	}
	if j+1 >= len(r) || r[j+1] != '_' {
		return false
	}
	_, err := strconv.ParseInt(string(r[i+4:j]), 16, 32)
	return err == nil
}

// FileblobPath returns the path of the file that a fileblob bucket rooted
// at dir (a host_path or volume_claim store) writes for key: fileblob
// escapes keys with gocloud's HexEscape and its own rule.
func FileblobPath(dir, key string) string {
	return filepath.Join(dir, filepath.FromSlash(gocloudEscape(key, fileblobRule)))
}

// fileblobRule is fileblob's shouldEscape on Linux: a control character,
// the slash of "../", the second slash of "//", a trailing slash.
func fileblobRule(_ string, r []rune, i int) bool {
	c := r[i]
	return c < 32 || dotDotSlash(r, i) ||
		(i > 0 && c == '/' && r[i-1] == '/') ||
		(c == '/' && i == len(r)-1)
}

// dotDotSlash is the rule of every driver: the slash of "../".
func dotDotSlash(r []rune, i int) bool {
	return i > 1 && r[i] == '/' && r[i-1] == '.' && r[i-2] == '.'
}

// realKey returns the store's key of a listed object and whether the blob
// API would address another key under lo.Key.
func realKey(lo *blob.ListObject, real string, rule escapeRule) (string, bool) {
	return real, gocloudEscape(lo.Key, rule) != real
}

func s3Rule(_ string, r []rune, i int) bool { return r[i] < 32 || dotDotSlash(r, i) }

// RealKey implements transfer.RealKeys.
func (s3Provider) RealKey(lo *blob.ListObject) (string, bool) {
	var o types.Object
	if !lo.As(&o) || o.Key == nil {
		return lo.Key, false
	}
	return realKey(lo, *o.Key, s3Rule)
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

func gcsRule(_ string, r []rune, i int) bool {
	return r[i] == '\n' || r[i] == '\r' || dotDotSlash(r, i)
}

// RealKey implements transfer.RealKeys.
func (gcsProvider) RealKey(lo *blob.ListObject) (string, bool) {
	var oa storage.ObjectAttrs
	if !lo.As(&oa) || oa.Name == "" {
		return lo.Key, false
	}
	return realKey(lo, oa.Name, gcsRule)
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

// azureRule is gocloud's Azure driver's, for whole keys (it compares a
// rune's index with the key's length in bytes, and so does this).
func azureRule(key string, r []rune, i int) bool {
	return azurePrefixRule(key, r, i) || (i == len(key)-1 && r[i] == '/')
}

// azurePrefixRule is azureRule for prefixes, whose trailing slash gocloud
// keeps (unless it ends "../").
func azurePrefixRule(_ string, r []rune, i int) bool {
	c := r[i]
	return c < 32 || c == '"' || c == '#' || c == '%' || c == '?' || c == '\\' || c == 127 || dotDotSlash(r, i)
}

// RealPrefix implements transfer.RealKeys.
func (azureProvider) RealPrefix(prefix string) string { return gocloudEscape(prefix, azurePrefixRule) }

// RealPrefix implements transfer.RealKeys.
func (s3Provider) RealPrefix(prefix string) string { return gocloudEscape(prefix, s3Rule) }

// RealPrefix implements transfer.RealKeys.
func (gcsProvider) RealPrefix(prefix string) string { return gocloudEscape(prefix, gcsRule) }

// RealKey implements transfer.RealKeys.
func (azureProvider) RealKey(lo *blob.ListObject) (string, bool) {
	var item container.BlobItem
	if !lo.As(&item) || item.Name == nil {
		return lo.Key, false
	}
	return realKey(lo, *item.Name, azureRule)
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
	r := &objectBody{ReadCloser: resp.Body, size: -1}
	if resp.ContentLength != nil {
		r.size = *resp.ContentLength
	}
	if resp.LastModified != nil {
		r.modTime = *resp.LastModified
	}
	return r, nil
}
