package main

import (
	"context"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Objects counts the objects in an S3 mirror's bucket, staged ones too.
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
		n++
	}
	return n
}
