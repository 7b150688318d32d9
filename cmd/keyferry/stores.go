package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
)

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keyferry.yaml", "configuration file")
	live := fs.Bool("live", false, "also read the stores: list secrets older than their rotation policy allows")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Checks that need the stores' declared limits (names a target cannot hold, collisions): opening
	// the stores makes no call.
	sts, err := stores.OpenAll(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	limits := map[string]store.Limits{}
	for n, s := range sts {
		limits[n] = s.Limits()
	}
	if errs := replicate.Check(cfg.Replicate, limits); len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintf(stderr, "%s: %v\n", *file, e)
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d stores, %d replication rules, %d notification routes, %d rotation policies)\n", *file, len(cfg.Stores),
		len(cfg.Replicate), len(cfg.Notify), len(cfg.Rotate))
	if !*live || len(cfg.Rotate) == 0 {
		return 0
	}
	_, rot, _, ok := rotatorFor(context.Background(), *file, stderr, nil)
	if !ok {
		return 1
	}
	due, err := rot.Due(context.Background())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, d := range due {
		fmt.Fprintf(stdout, "older than policy %s: %s/%s (last %s, %s); the next timer rotates it\n", d.Policy, d.Store, d.Name,
			d.Last.Format(time.RFC3339), d.Reason)
	}
	if len(due) == 0 {
		fmt.Fprintln(stdout, "every rotated secret is within its policy")
	}
	return 0
}

func runStores(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: keyferry stores test [-f keyferry.yaml] [--write] [--timeout 20s]")
		return 2
	}
	fs := flag.NewFlagSet("stores test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "keyferry.yaml", "configuration file")
	write := fs.Bool("write", false, "also write and delete a probe secret (keyferry-probe-*) in every store")
	timeout := fs.Duration("timeout", 20*time.Second, "time allowed per store")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	results := make([]probeResult, len(cfg.Stores))
	var wg sync.WaitGroup
	for i, sc := range cfg.Stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			results[i] = probe(c, sc, *write)
		}()
	}
	wg.Wait()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tTYPE\tREACH\tDESCRIBE\tLIST\tWRITE\tTIME\tDETAIL")
	failed := 0
	for _, r := range results {
		if !r.ok {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.typ, r.reach, r.describe, r.list, r.write,
			r.took.Round(time.Millisecond), r.detail)
	}
	_ = tw.Flush()
	if failed > 0 {
		fmt.Fprintf(stderr, "%d of %d stores failed\n", failed, len(results))
		return 1
	}
	return 0
}

type probeResult struct {
	name, typ                    string
	reach, describe, list, write string
	detail                       string
	took                         time.Duration
	ok                           bool
}

// probe checks one store: reachable, metadata readable, listable, and (opt-in) writable. It never reads
// the value of an existing secret.
func probe(ctx context.Context, sc *config.StoreConfig, write bool) (r probeResult) {
	start := time.Now()
	r = probeResult{name: sc.Name, typ: sc.Type, reach: "-", describe: "-", list: "-", write: "skipped"}
	defer func() {
		r.took = time.Since(start)
		r.detail = strings.Join(strings.Fields(r.detail), " ") // one line per store
	}()
	st, err := stores.Open(ctx, sc)
	if err != nil {
		r.reach, r.detail = "error", err.Error()
		return r
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	probeName := "keyferry-probe-" + hex.EncodeToString(b)

	_, err = st.Describe(ctx, probeName)
	switch {
	case err == nil || errors.Is(err, store.ErrNotFound):
		r.reach, r.describe = "ok", "ok"
	case errors.Is(err, store.ErrPermissionDenied):
		r.reach, r.describe, r.detail = "ok", "denied", err.Error()
		return r
	default:
		r.reach, r.detail = status(err), err.Error()
		return r
	}
	r.list = "ok"
	for _, err := range st.List(ctx, store.ListOptions{PageSize: 1}) {
		if err != nil {
			r.list, r.detail = status(err), err.Error()
			return r
		}
		break
	}
	if write {
		if _, err := st.Put(ctx, probeName, store.Text("keyferry connectivity probe"), store.PutOptions{}); err != nil {
			r.write, r.detail = status(err), err.Error()
			return r
		}
		if err := st.Delete(ctx, probeName, store.DeleteOptions{Force: true}); err != nil {
			r.write, r.detail = "written, not deleted", err.Error()
			return r
		}
		r.write = "ok"
	}
	r.ok = true
	return r
}

func status(err error) string {
	for _, k := range []struct {
		kind error
		word string
	}{
		{store.ErrPermissionDenied, "denied"},
		{store.ErrThrottled, "throttled"},
		{store.ErrUnavailable, "unreachable"},
		{store.ErrNotFound, "not found"},
	} {
		if errors.Is(err, k.kind) {
			return k.word
		}
	}
	return strings.SplitN(err.Error(), ":", 2)[0]
}
