package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tail: what a mirror that hangs or dies in the middle of an upload
// costs the client. One chunk of tailSize bytes goes to mirrors 1, 2 and
// 3 (write quorum 2) while all are healthy, and again with MinIO 3
// stopped (SIGSTOP: its connections stay open and nothing answers) or
// killed (SIGKILL: connections refused) tailFaultAfter into the request.
// The goal is at most twice the healthy chunk's time.
const (
	tailSize       = 60_000_000
	tailFaultAfter = 300 * time.Millisecond
	tailGoal       = 2.0
)

// tailOnly reports whether ACESTASH_BENCH_TAIL_ONLY asks for the tail
// figures alone (a quick run; everything else in the table is left out).
func tailOnly() bool { return os.Getenv("ACESTASH_BENCH_TAIL_ONLY") != "" }

// readsOnly reports whether ACESTASH_BENCH_READS_ONLY asks for the figures
// of one mirror and of the reads alone (a quick run for the read path).
func readsOnly() bool { return os.Getenv("ACESTASH_BENCH_READS_ONLY") != "" }

// tailResults are one round's times of the tail figures, in seconds.
type tailResults struct {
	healthy, stopped, killed float64
}

// tail measures the tail figures: the chunk healthy, with mirror 3 stopped,
// then with it killed, bringing it back after each.
func (e *bench) tail(b *testing.B, r *tailResults) {
	b.Helper()
	if e.tailFile.path == "" {
		f, err := writeRandomFile(filepath.Join(b.TempDir(), "tail.bin"), tailSize)
		if err != nil {
			b.Fatal(err)
		}
		e.tailFile = f
	}
	job := e.chunked(e.tailFile, 1, "1", "2", "3")
	res, _ := e.measure(b, job)
	r.healthy = res.Seconds
	e.checkPage(b, res.Slugs[0], e.tailFile.sha256)
	e.waitRepaired(b, res.Slugs[0], "1", "2", "3")
	e.emptyAll(b, e.aceBucket, 1, tailSize)

	m3, pid := e.cluster.minio[2], e.minioPID[2]
	defer syscall.Kill(pid, syscall.SIGCONT) // whatever happens below
	job.Fault = &clientFault{PID: pid, Signal: int(syscall.SIGSTOP), After: tailFaultAfter}
	res, _ = e.measure(b, job)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		b.Fatal(err)
	}
	r.stopped = res.Seconds
	e.checkMissing(b, res.Slugs[0])

	job.Fault.Signal = int(syscall.SIGKILL)
	res, _ = e.measure(b, job)
	r.killed = res.Seconds
	m3.Kill() // reaps it
	m3.Restart(b)
	pid, err := minioPID(m3.Endpoint)
	if err != nil {
		b.Fatal(err)
	}
	e.minioPID[2] = pid
	e.checkMissing(b, res.Slugs[0])
}

// checkMissing checks that the file of slug has the SHA-256 of the tail
// file and a record naming mirror 3 as missing, deletes it through the
// API (so the repairer leaves it), waits until acestash finds mirror 3
// healthy again and checks that every bucket was emptied of it.
func (e *bench) checkMissing(b *testing.B, slug string) {
	b.Helper()
	e.checkPage(b, slug, e.tailFile.sha256)
	creds := []field{{"api_key", testKey}, {"api_token", testToken}, {"files", slug}}
	var info map[string]map[string]string
	postForm(b, e.aceURL+"/api/v1/file/info", creds).result(b, &info)
	if fi := info[slug]; fi["mirrors"] != "1,2" || fi["missing"] != "3" {
		b.Fatalf("file/info of the chunk written with mirror 3 hung: %v; want mirrors 1,2 and 3 missing", fi)
	}
	postForm(b, e.aceURL+"/api/v1/file/delete", creds).result(b, &info)
	e.waitMirrorUp(b, "3")
	e.emptyAll(b, e.aceBucket, 0, tailSize)
}

// waitMirrorUp waits until acestash's last health check of mirror id
// passed; acestash checks every 15 s, as by default.
func (e *bench) waitMirrorUp(b *testing.B, id string) {
	b.Helper()
	want := fmt.Sprintf("acestash_mirror_up{mirror=%q} 1", id)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(e.aceURL + "/metrics")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(string(body), want) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("mirror %s not healthy 60 s after it came back", id)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clientFault is a signal a client sends to a process some time after
// its job starts.
type clientFault struct {
	PID    int           `json:"pid"`
	Signal int           `json:"signal"`
	After  time.Duration `json:"after"`
}

// arm sends the fault's signal After from now; stop cancels it if it has
// not fired.
func (f *clientFault) arm() (stop func() bool) {
	if f == nil {
		return func() bool { return false }
	}
	t := time.AfterFunc(f.After, func() { syscall.Kill(f.PID, syscall.Signal(f.Signal)) })
	return t.Stop
}

// tailRows are the table's rows of the tail figures.
func tailRows(rounds []tailResults) [][]string {
	times := func(f func(*tailResults) float64) []float64 {
		v := make([]float64, len(rounds))
		for i := range rounds {
			v[i] = f(&rounds[i])
		}
		return v
	}
	healthy := median(times(func(r *tailResults) float64 { return r.healthy }))
	row := func(what string, f func(*tailResults) float64) []string {
		ratios := times(func(r *tailResults) float64 { return f(r) / r.healthy })
		lo, hi := ratios[0], ratios[0]
		for _, x := range ratios {
			lo, hi = min(lo, x), max(hi, x)
		}
		m := median(ratios)
		return []string{"15", fmt.Sprintf("%s chunk → 3 mirrors, mirror 3 %s %v in", fmtSize(tailSize), what, tailFaultAfter),
			fmt.Sprintf("%.2f s", median(times(f))), fmt.Sprintf("healthy: %.2f s", healthy),
			fmt.Sprintf("%.2f× the healthy time (%.2f–%.2f)", m, lo, hi), fmt.Sprintf("≤ %.0f×", tailGoal), verdict(m <= tailGoal)}
	}
	return [][]string{
		row("SIGSTOPped", func(r *tailResults) float64 { return r.stopped }),
		row("SIGKILLed", func(r *tailResults) float64 { return r.killed }),
	}
}
