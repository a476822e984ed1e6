package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/acestash/acestash/api"
	"github.com/acestash/acestash/store"
)

// `mirrors wait` asks for the job's progress after waitFirst, then twice
// as long each time up to waitEvery: a short job is seen done at once, a
// long one costs a request a second.
const (
	waitFirst = 50 * time.Millisecond
	waitEvery = time.Second
)

func mirrorsCmd(args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "forget" {
		return forgetCmd(args[1:], stdout)
	}
	c, fs, err := adminCmd("mirrors", args, stdout)
	if err != nil {
		return err
	}
	switch args[0] {
	case "ls":
		asJSON := fs.Bool("json", false, "print the server's JSON answer")
		if err := noArgs(fs, args[1:]); err != nil {
			return err
		}
		if *asJSON {
			return c.call(http.MethodGet, "/mirrors", nil, nil)
		}
		b, err := c.do(http.MethodGet, "/mirrors", nil, nil)
		if err != nil {
			return err
		}
		var v struct{ Mirrors []api.AdminMirror }
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("mirrors ls: the answer is not a list of mirrors: %w", err)
		}
		return printMirrors(stdout, v.Mirrors)
	case "drain", "rebuild":
		to := fs.String("to", "", "drain: mirror ids the copies go to, comma-separated (default: each owner's allowed mirrors)")
		rate := fs.Int64("rate", 0, "most bytes a second the job copies (0: no limit)")
		share := fs.Float64("share", 0, "most of the time the job spends copying, 0-1, as scrub_share (0: no limit)")
		wait := fs.Bool("wait", false, "follow the job until it ends; exit 0 when it is done")
		id, err := oneArg(fs, args[1:], "mirror ID")
		if err != nil {
			return err
		}
		body := api.JobFields{Rate: *rate, Share: *share}
		if *to != "" {
			if args[0] == "rebuild" {
				return errors.New("mirrors rebuild: --to is for drains")
			}
			body.To = splitIDs(*to)
		}
		if !*wait {
			return c.call(http.MethodPost, "/mirrors/"+url.PathEscape(id)+"/"+args[0], nil, body)
		}
		if _, err := c.do(http.MethodPost, "/mirrors/"+url.PathEscape(id)+"/"+args[0], nil, body); err != nil {
			return err
		}
		return c.follow(id, os.Stderr, isTerminal(os.Stderr))
	case "pause", "resume", "cancel":
		id, err := oneArg(fs, args[1:], "mirror ID")
		if err != nil {
			return err
		}
		return c.call(http.MethodPost, "/mirrors/"+url.PathEscape(id)+"/"+args[0], nil, nil)
	case "wait":
		id, err := oneArg(fs, args[1:], "mirror ID")
		if err != nil {
			return err
		}
		return c.follow(id, os.Stderr, isTerminal(os.Stderr))
	}
	return fmt.Errorf("unknown command mirrors %s\n%s", args[0], adminUsage)
}

func splitIDs(s string) []string {
	var ids []string
	for _, id := range strings.Split(s, ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// printMirrors prints the mirrors as a table.
func printMirrors(w io.Writer, list []api.AdminMirror) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tHEALTH\tFILES\tBYTES\tMISSING\tJOB")
	for _, m := range list {
		health := "ok"
		switch {
		case !m.Configured:
			health = "not configured"
		case !m.Healthy:
			health = "down: " + m.Error
		}
		job := "-"
		if m.Job != nil {
			job = progressLine(m.Job)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", m.ID, m.Name, health, m.Files, api.HumanSize(m.Bytes), m.Missing, job)
	}
	return tw.Flush()
}

// progressLine says how far a job is, in one line.
func progressLine(j *api.AdminJob) string {
	s := fmt.Sprintf("%s %s: %d/%d files, %s/%s", j.Kind, j.State, j.DoneFiles, j.Files, api.HumanSize(j.DoneBytes), api.HumanSize(j.Bytes))
	if j.Rate > 0 {
		s += fmt.Sprintf(", %s/s", api.HumanSize(int64(j.Rate)))
	}
	if j.Left > 0 {
		s += fmt.Sprintf(", %v left", (time.Duration(j.Left) * time.Second).Round(time.Second))
	}
	if j.Error != "" {
		s += " (" + j.Error + ")"
	}
	return s
}

// follow shows the mirror's job until it ends: a progress bar when bar
// (stderr is a terminal), otherwise a line whenever it moved. It returns
// nil once the job is done, an error if it failed or was cancelled.
func (c *adminClient) follow(id string, w io.Writer, bar bool) error {
	var jb *jobBar
	if bar {
		jb = newJobBar(w)
		defer jb.end(false)
	}
	last, pause := "", waitFirst
	for {
		b, err := c.do(http.MethodGet, "/mirrors/"+url.PathEscape(id)+"/job", nil, nil)
		if err != nil {
			return err
		}
		var j api.AdminJob
		if err := json.Unmarshal(b, &j); err != nil {
			return fmt.Errorf("mirrors wait: the answer is not a job: %w", err)
		}
		if jb != nil {
			jb.set(fmt.Sprintf("%s of mirror %s (%s): %d/%d files", j.Kind, id, j.State, j.DoneFiles, j.Files), j.DoneBytes, j.Bytes)
		} else if line := progressLine(&j); line != last {
			fmt.Fprintf(w, "mirror %s: %s\n", id, line)
			last = line
		}
		switch j.State {
		case store.JobDone:
			jb.end(true)
			return nil
		case store.JobFailed, store.JobCancelled:
			return fmt.Errorf("the %s of mirror %s %s: %s", j.Kind, id, j.State, j.Error)
		}
		time.Sleep(pause)
		pause = min(2*pause, waitEvery)
	}
}

// jobBar is a job's progress bar: what it is doing, and its bytes.
type jobBar struct {
	p     *mpb.Progress
	bar   *mpb.Bar
	label atomic.Pointer[string]
	at    time.Time // of the last set
	ended bool
}

// newJobBar draws a bar on w, terminal or not (follow asks for one only
// on a terminal; elsewhere a line is 160 columns at most).
func newJobBar(w io.Writer) *jobBar {
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(160), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())
	jb := &jobBar{p: p, at: time.Now()}
	jb.label.Store(new(string))
	jb.bar = jb.p.AddBar(0, mpb.BarWidth(40), // no total yet: only end completes it
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return *jb.label.Load() }, decor.WCSyncSpaceR),
			decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpace)),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace),
			decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), "done")))
	return jb
}

// set shows the job, named label, at done of total bytes.
func (jb *jobBar) set(label string, done, total int64) {
	jb.label.Store(&label)
	jb.bar.SetTotal(max(total, 1), false)
	now := time.Now()
	jb.bar.EwmaSetCurrent(done, now.Sub(jb.at))
	jb.at = now
}

// end completes the bar (done) or leaves it where it stopped, and waits
// for its last frame; a nil bar or one ended already ignores it.
func (jb *jobBar) end(done bool) {
	if jb == nil || jb.ended {
		return
	}
	jb.ended = true
	if done {
		jb.bar.SetTotal(-1, true)
	} else {
		jb.bar.Abort(false)
	}
	jb.p.Wait()
}
