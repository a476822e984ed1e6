package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/acestash/acestash/api"
	"github.com/acestash/acestash/store"
)

// waitEvery is how often `mirrors wait` asks for the job's progress.
const waitEvery = time.Second

func mirrorsCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(adminUsage)
	}
	if args[0] == "forget" {
		return forgetCmd(args[1:], stdout)
	}
	c := &adminClient{out: stdout}
	fs := flag.NewFlagSet("mirrors "+args[0], flag.ContinueOnError)
	adminFlags(fs, c)
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
		wait := fs.Bool("wait", false, "follow the job until it ends; exit 0 when it is done")
		id, err := oneArg(fs, args[1:], "mirror ID")
		if err != nil {
			return err
		}
		body := api.JobFields{Rate: *rate}
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
		return c.follow(id, os.Stderr)
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
		return c.follow(id, os.Stderr)
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

// follow shows the mirror's job until it ends: a progress bar on a
// terminal, otherwise a line whenever it moved. It returns nil once the
// job is done, an error if it failed or was cancelled.
func (c *adminClient) follow(id string, w io.Writer) error {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	var bar *progressbar.ProgressBar
	last := ""
	for {
		b, err := c.do(http.MethodGet, "/mirrors/"+url.PathEscape(id)+"/job", nil, nil)
		if err != nil {
			return err
		}
		var j api.AdminJob
		if err := json.Unmarshal(b, &j); err != nil {
			return fmt.Errorf("mirrors wait: the answer is not a job: %w", err)
		}
		if tty {
			if bar == nil {
				bar = progressbar.NewOptions64(max(j.Bytes, 1), progressbar.OptionSetWriter(w),
					progressbar.OptionShowBytes(true), progressbar.OptionShowCount(),
					progressbar.OptionSetDescription(fmt.Sprintf("%s of mirror %s", j.Kind, id)),
					progressbar.OptionSetPredictTime(true), progressbar.OptionFullWidth())
			}
			bar.ChangeMax64(max(j.Bytes, 1))
			bar.Set64(j.DoneBytes)
			bar.Describe(fmt.Sprintf("%s of mirror %s (%s): %d/%d files", j.Kind, id, j.State, j.DoneFiles, j.Files))
		} else if line := progressLine(&j); line != last {
			fmt.Fprintf(w, "mirror %s: %s\n", id, line)
			last = line
		}
		switch j.State {
		case store.JobDone:
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(w)
			}
			return nil
		case store.JobFailed, store.JobCancelled:
			if bar != nil {
				fmt.Fprintln(w)
			}
			return fmt.Errorf("the %s of mirror %s %s: %s", j.Kind, id, j.State, j.Error)
		}
		time.Sleep(waitEvery)
	}
}
