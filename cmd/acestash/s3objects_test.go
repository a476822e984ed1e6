package main

import (
	"context"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Objects counts the finished objects in an S3 mirror's bucket, leaving
// out the staging area of uploads in progress.
func s3Objects(t *testing.T, m MirrorConfig) int {
	t.Helper()
	c, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Secure: m.Secure})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for obj := range c.ListObjects(context.Background(), m.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list %s/%s: %v", m.Endpoint, m.Bucket, obj.Err)
		}
		if !strings.HasPrefix(obj.Key, ".") {
			n++
		}
	}
	return n
}
