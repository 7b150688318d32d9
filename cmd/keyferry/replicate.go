package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/notify"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/rotate"
	"github.com/keyferry/keyferry/core/stores"
)

// engineFor loads the configuration and builds the replication engine (no store is called yet).
func engineFor(ctx context.Context, file string, stderr io.Writer, logs io.Writer) (*config.Config, *replicate.Engine, bool) {
	cfg, err := config.Load(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, false
	}
	if len(cfg.Replicate) == 0 {
		fmt.Fprintf(stderr, "%s: there is no `replicate:` section: nothing to plan (see docs/configuration.md)\n", file)
		return nil, nil, false
	}
	sts, err := stores.OpenAll(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, false
	}
	if logs == nil {
		logs = io.Discard
	}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	notifier, err := notify.New(cfg.Notify, logger)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return nil, nil, false
	}
	eng, err := replicate.New(cfg.Replicate, sts, replicate.Options{Logger: logger, Audit: audit.NewJSONSink(logs), Notifier: notifier, Hold: rotate.Hold})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return nil, nil, false
	}
	return cfg, eng, true
}

// sourceStores are the stores some rule replicates from, in rule order.
func sourceStores(cfg *config.Config) []string {
	var out []string
	for _, r := range cfg.Replicate {
		if !slices.Contains(out, r.From.Store) {
			out = append(out, r.From.Store)
		}
	}
	return out
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keyferry.yaml", "configuration file")
	output := fs.String("output", "table", "table or json")
	only := fs.String("only", "", "plan only this source secret (by name)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintln(stderr, "--output must be table or json")
		return 2
	}
	cfg, eng, ok := engineFor(ctx, *file, stderr, nil)
	if !ok {
		return 1
	}
	plan := &replicate.Plan{}
	scopes := []replicate.Scope{{}}
	if *only != "" {
		scopes = nil
		for _, s := range sourceStores(cfg) {
			scopes = append(scopes, replicate.Scope{Store: s, Name: *only})
		}
	}
	for _, sc := range scopes {
		p, err := eng.Plan(ctx, sc)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		plan.Items = append(plan.Items, p.Items...)
		plan.Failures = append(plan.Failures, p.Failures...)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(plan)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tSOURCE\tTARGET\tACTION\tWHY")
		for _, it := range plan.Items {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Rule, it.Source, it.Target.Store+"/"+it.Target.Name, it.Action, it.Reason)
		}
		tw.Flush()
		var counts []string
		for _, a := range replicate.Actions {
			if n := plan.Count(a); n > 0 {
				counts = append(counts, fmt.Sprintf("%d %s", n, a))
			}
		}
		if len(counts) == 0 {
			counts = []string{"nothing selected"}
		}
		fmt.Fprintf(stdout, "\nplan: %s\n", strings.Join(counts, ", "))
		for _, f := range plan.Failures {
			fmt.Fprintf(stderr, "cannot plan %s: %s\n", f.Source, f.Error)
		}
	}
	if len(plan.Failures) > 0 {
		return 1
	}
	return 0
}

func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keyferry.yaml", "configuration file")
	only := fs.String("only", "", "replicate only this source secret (by name)")
	deep := fs.Bool("deep", false, "re-check every replica, even sources marked as replicated")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, eng, ok := engineFor(ctx, *file, stderr, stderr)
	if !ok {
		return 1
	}
	var res *replicate.Result
	var err error
	if *only != "" {
		res = &replicate.Result{Counts: map[replicate.Action]int{}}
		for _, s := range sourceStores(cfg) {
			r, e := eng.Sync(ctx, s, *only)
			for a, n := range r.Counts {
				res.Counts[a] += n
			}
			res.Failures = append(res.Failures, r.Failures...)
			if e != nil {
				err = e
			}
		}
	} else {
		bar := &progress{w: stderr, quiet: *quiet}
		res, err = eng.Sweep(ctx, replicate.SweepOptions{Deep: *deep, Progress: bar.update})
		bar.done()
	}
	fmt.Fprintf(stdout, "sync: %s", res.Summary())
	if res.Skipped > 0 {
		fmt.Fprintf(stdout, " (%d sources already replicated)", res.Skipped)
	}
	fmt.Fprintln(stdout)
	for _, f := range res.Failures {
		fmt.Fprintf(stderr, "failed: %s", f.Source)
		if f.Target != nil {
			fmt.Fprintf(stderr, " → %s", *f.Target)
		}
		fmt.Fprintf(stderr, ": %s\n", f.Error)
	}
	if err != nil {
		return 1
	}
	return 0
}

// progress draws a progress bar on long sweeps.
type progress struct {
	w     io.Writer
	quiet bool
	drawn bool
	last  int
}

func (p *progress) update(done, total int) {
	if p.quiet || total < 50 {
		return
	}
	pct := done * 100 / total
	if pct == p.last && done != total {
		return
	}
	p.last = pct
	const width = 30
	n := done * width / total
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d", strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total)
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keyferry.yaml", "configuration file")
	output := fs.String("output", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	_, eng, ok := engineFor(ctx, *file, stderr, nil)
	if !ok {
		return 1
	}
	st, err := eng.Status(ctx, replicate.Scope{})
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tSOURCE\tREPLICA\tSTATE\tWHY")
		counts := map[string]int{}
		for _, s := range st {
			counts[s.State]++
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Rule, s.Source, s.Target.Store+"/"+s.Target.Name, s.State, s.Reason)
		}
		tw.Flush()
		var parts []string
		for _, k := range []string{"in-sync", "stale", "missing", "conflict", "refused", "newer", "orphaned", "unknown"} {
			if counts[k] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
			}
		}
		fmt.Fprintf(stdout, "\nstatus: %s\n", strings.Join(parts, ", "))
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
