package s3mirror

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acestash/acestash/mirrors"
	"github.com/acestash/acestash/mirrors/s3mirror/miniotest"
)

// beginEnv makes the test binary the process TestKilledInBegin kills:
// its value is the file that process appends each key to before it
// begins an upload of it.
const beginEnv = "S3MIRROR_BEGIN_LOG"

// TestKilledInBegin kills, six times, a process beginning uploads from 20
// goroutines, at whatever instant the kill lands, then sweeps the bucket
// as the janitor does. Afterwards no key any process began has an
// unfinished S3 upload and no staging object is left: a crash between
// any two steps of Begin leaves something the sweep finds.
func TestKilledInBegin(t *testing.T) {
	if path := os.Getenv(beginEnv); path != "" {
		beginForever(t, path)
		return
	}
	srv := miniotest.Start(t)
	m := newMirror(t, srv, "killed-begin")
	logPath := t.TempDir() + "/keys"
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilledInBegin$", "-test.count=1")
		cmd.Env = append(os.Environ(), beginEnv+"="+logPath,
			"S3MIRROR_ENDPOINT="+srv.Endpoint, "S3MIRROR_ACCESS="+srv.AccessKey, "S3MIRROR_SECRET="+srv.SecretKey,
			fmt.Sprintf("S3MIRROR_ROUND=%d", round))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once it has begun some uploads, a different number
		// each round.
		want := len(readKeys(t, logPath)) + 60 + 37*round
		deadline := time.Now().Add(60 * time.Second)
		for len(readKeys(t, logPath)) < want {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: the process began fewer than %d uploads in 60s", round, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	keys := readKeys(t, logPath)
	ctx := t.Context()
	var open []mirrors.Upload
	if err := m.ListUploads(ctx, "files/", func(up mirrors.Upload, _ time.Time) error {
		open = append(open, up)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, up := range open {
		if err := m.Abort(ctx, up); err != nil {
			t.Errorf("abort %+v: %v", up, err)
		}
	}
	left := 0
	for _, key := range keys {
		res, err := m.core.ListMultipartUploads(ctx, m.bucket, key, "", "", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range res.Uploads {
			if u.Key == key {
				left++
				t.Errorf("an unfinished upload of %s is left, id %s", key, u.UploadID)
			}
		}
	}
	t.Logf("%d uploads begun in 6 killed processes; the sweep found %d unfinished, %d left after it", len(keys), len(open), left)
	if len(open) == 0 {
		t.Fatal("the sweep found no unfinished upload: the processes were not killed mid-way")
	}
}

// readKeys returns the keys logged so far.
func readKeys(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k := strings.TrimSpace(sc.Text()); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// beginForever is the killed process: it logs keys and begins uploads of
// them from 20 goroutines until it is killed.
func beginForever(t *testing.T, path string) {
	m, err := New(context.Background(), Config{Endpoint: os.Getenv("S3MIRROR_ENDPOINT"), Bucket: "killed-begin",
		AccessKey: os.Getenv("S3MIRROR_ACCESS"), SecretKey: os.Getenv("S3MIRROR_SECRET")})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	round := os.Getenv("S3MIRROR_ROUND")
	for g := range 20 {
		go func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("files/r%s-g%d-%d", round, g, i)
				// One write each: the kernel keeps it whatever kills us.
				if _, err := f.WriteString(key + "\n"); err != nil {
					return
				}
				m.Begin(context.Background(), key)
			}
		}()
	}
	select {}
}
