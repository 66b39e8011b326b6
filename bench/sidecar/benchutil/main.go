// Command benchutil is the sidecar benchmark's helper: it writes the data
// sets and, on the benchmark's private MinIO, creates the bucket, counts
// and sums what a tool uploaded, and removes it between runs.
//
//	benchutil files DIR N SIZE      N files of SIZE random bytes in DIR, 100 per folder
//	benchutil file PATH SIZE        one file of SIZE random bytes
//	benchutil mb BUCKET
//	benchutil count BUCKET PREFIX   prints "<objects> <bytes>"
//	benchutil rm BUCKET PREFIX
//
// The endpoint and credentials come from S3_ENDPOINT, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION.
package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: benchutil files DIR N SIZE | file PATH SIZE | mb BUCKET | count BUCKET PREFIX | rm BUCKET PREFIX")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "files":
		n, size := atoi(os.Args[3]), atoi(os.Args[4])
		buf := make([]byte, size)
		r := rand.NewChaCha8([32]byte{1})
		for i := range n {
			dir := filepath.Join(os.Args[2], fmt.Sprintf("d%04d", i/100))
			check(os.MkdirAll(dir, 0o755))
			r.Read(buf)
			check(os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), buf, 0o644))
		}
		return
	case "file":
		size := atoi(os.Args[3])
		f, err := os.Create(os.Args[2])
		check(err)
		w := bufio.NewWriterSize(f, 1<<20)
		r := rand.NewChaCha8([32]byte{2})
		buf := make([]byte, 1<<20)
		for size > 0 {
			n := min(size, len(buf))
			r.Read(buf[:n])
			_, err := w.Write(buf[:n])
			check(err)
			size -= n
		}
		check(w.Flush())
		check(f.Close())
		return
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(os.Getenv("AWS_REGION")),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), "")))
	check(err)
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(os.Getenv("S3_ENDPOINT"))
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	bucket := os.Args[2]
	switch os.Args[1] {
	case "mb":
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
		check(err)
	case "count", "rm":
		prefix := os.Args[3]
		var n, size int64
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			check(err)
			var ids []types.ObjectIdentifier
			for _, o := range page.Contents {
				n++
				size += aws.ToInt64(o.Size)
				ids = append(ids, types.ObjectIdentifier{Key: o.Key})
			}
			if os.Args[1] == "rm" && len(ids) > 0 {
				_, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
				check(err)
			}
		}
		if os.Args[1] == "count" {
			fmt.Println(n, size)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(2)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	check(err)
	return n
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchutil:", err)
		os.Exit(1)
	}
}
