package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/rotate"
	"github.com/keyferry/keyferry/core/stores"
)

// rotatorFor loads the configuration and builds the rotation engine over the replication engine (no store
// is called yet).
func rotatorFor(ctx context.Context, file string, stderr, logs io.Writer) (*config.Config, *rotate.Engine, *replicate.Engine, bool) {
	cfg, err := config.Load(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, nil, false
	}
	if len(cfg.Rotate) == 0 {
		fmt.Fprintf(stderr, "%s: there is no `rotate:` section: nothing rotates (see docs/configuration.md)\n", file)
		return nil, nil, nil, false
	}
	sts, err := stores.OpenAll(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, nil, false
	}
	if logs == nil {
		logs = io.Discard
	}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	repl, err := replicate.New(cfg.Replicate, sts, replicate.Options{Logger: logger, Audit: audit.NewJSONSink(logs), Hold: rotate.Hold})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return nil, nil, nil, false
	}
	rot, err := rotate.New(cfg.Rotate, sts, repl, rotate.Options{Logger: logger, Audit: audit.NewJSONSink(logs)})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", file, err)
		return nil, nil, nil, false
	}
	return cfg, rot, repl, true
}

// runRotate: keyferry rotate [--dry-run] [--output table|json] [NAME]
func runRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keyferry.yaml", "configuration file")
	dry := fs.Bool("dry-run", false, "say what would rotate, change nothing")
	output := fs.String("output", "table", "table or json")
	verbose := fs.Bool("v", false, "log each step to stderr (never a value)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *output != "table" && *output != "json" || fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: keyferry rotate [-f keyferry.yaml] [--dry-run] [--output table|json] [NAME]")
		return 2
	}
	var logs io.Writer
	if *verbose {
		logs = stderr
	}
	cfg, rot, repl, ok := rotatorFor(ctx, *file, stderr, logs)
	if !ok {
		return 1
	}
	if fs.NArg() == 1 {
		return rotateOne(ctx, cfg, rot, repl, fs.Arg(0), *dry, *output, stdout, stderr)
	}
	if *dry {
		due, err := rot.Due(ctx)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if *output == "json" {
			return writeJSON(stdout, stderr, due)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POLICY\tSECRET\tLAST\tDUE SINCE\tWHY")
		for _, d := range due {
			fmt.Fprintf(tw, "%s\t%s/%s\t%s (%s)\t%s\t%s\n", d.Policy, d.Store, d.Name, d.Last.Format(time.RFC3339), d.Since,
				d.DueAt.Format(time.RFC3339), d.Reason)
		}
		_ = tw.Flush()
		fmt.Fprintf(stdout, "%d due; nothing changed (--dry-run)\n", len(due))
		return 0
	}
	res, err := rot.RotateDue(ctx)
	return report(stdout, stderr, *output, res, err)
}

func rotateOne(ctx context.Context, cfg *config.Config, rot *rotate.Engine, repl *replicate.Engine, name string, dry bool, output string, stdout, stderr io.Writer) int {
	for _, p := range cfg.Rotate {
		pol, ok := rot.PolicyFor(p.Store, name)
		if !ok {
			continue
		}
		if dry {
			reps, err := repl.Replicas(ctx, p.Store, name)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
			fmt.Fprintf(stdout, "would rotate %s/%s under policy %s: a new value lands as pending in the primary and %d replicas, then is promoted everywhere\n",
				p.Store, name, pol, len(reps))
			for _, r := range reps {
				fmt.Fprintf(stdout, "  replica %s/%s\n", r.Store, r.Name)
			}
			return 0
		}
		res, err := rot.Rotate(ctx, pol, name)
		return report(stdout, stderr, output, []rotate.Result{res}, err)
	}
	fmt.Fprintf(stderr, "no rotate: policy matches %q\n", name)
	return 1
}

func report(stdout, stderr io.Writer, output string, res []rotate.Result, err error) int {
	if output == "json" {
		if writeJSON(stdout, stderr, res) != 0 {
			return 1
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POLICY\tSECRET\tROTATED\tNEW VERSION\tREPLICAS\tRECOVERED")
		for _, r := range res {
			fmt.Fprintf(tw, "%s\t%s/%s\t%v\t%s\t%d\t%s\n", r.Policy, r.Store, r.Name, r.Rotated, r.Version, len(r.Replicas), r.Recovered)
		}
		_ = tw.Flush()
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
