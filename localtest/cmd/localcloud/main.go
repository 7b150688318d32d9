// Command localcloud runs keyferry's local cloud.
//
//	localcloud demo   start the local cloud, write and read back a secret in every store through keyferry's
//	                  adapters (opened from a generated keyferry.yaml), then deploy the three functions on
//	                  it and show a change made in each cloud reaching the others through them, and a
//	                  foreign write to a replica being alerted; print tables, stop everything
//	localcloud up     start the local cloud, print its keyferry.yaml and environment, run until Ctrl-C
//
// Every server binds 127.0.0.1 and is stopped by its PID on exit, also on Ctrl-C.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/cloud"
)

// demoRules replicate between the three clouds both ways, and guard one secret with on_conflict: alert.
const demoRules = `replicate:
  - {name: from-aws, from: {store: aws, match: ["demo-*"]}, to: [azure, gcp, vault]}
  - {name: from-azure, from: {store: azure, match: ["demo-*"]}, to: [aws, gcp, vault]}
  - {name: from-gcp, from: {store: gcp, match: ["demo-*"]}, to: [aws, azure, vault]}
  - {name: guarded, from: {store: aws, match: ["guarded-*"]}, to: [vault], on_conflict: alert}
  - {name: rotated-out, from: {store: aws, match: ["rot-*"]}, to: [azure, gcp, vault]}
notify:
  - {type: log}
rotate:
  - {name: demo-rotation, store: aws, match: ["rot-*"], every: 1d, generate: {password: {length: 32, symbols: 2}}}
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := "demo"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	var err error
	switch cmd {
	case "demo":
		err = demo(ctx, os.Stdout)
	case "up":
		err = up(ctx, os.Stdout)
	default:
		fmt.Fprintln(os.Stderr, "usage: localcloud demo | up")
		os.Exit(2)
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "localcloud: interrupted; everything started was stopped")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "localcloud:", err)
		os.Exit(1)
	}
}

func start(ctx context.Context, out io.Writer) (*cloud.Cloud, error) {
	fmt.Fprintln(out, "starting the local cloud (every server on 127.0.0.1) ...")
	return cloud.Start(ctx, cloud.Options{Logf: func(f string, a ...any) { fmt.Fprintf(out, "  "+f+"\n", a...) }})
}

func up(ctx context.Context, out io.Writer) error {
	c, err := start(ctx, out)
	if err != nil {
		return err
	}
	defer c.Stop()
	path, err := c.WriteConfig()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nconfiguration: %s\n\n%s\nenvironment for keyferry against the local cloud:\n", path, c.Config())
	env := c.Env()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "  export %s=%s\n", k, env[k])
	}
	fmt.Fprintf(out, "\ntry:  go run ./cmd/keyferry stores test -f %s --write\nCtrl-C stops everything.\n", path)
	<-ctx.Done()
	return nil
}

func demo(ctx context.Context, out io.Writer) error {
	t0 := time.Now()
	c, err := start(ctx, out)
	if err != nil {
		return err
	}
	defer func() {
		c.Stop()
		fmt.Fprintln(out, "stopped every server")
	}()
	defer c.SetEnv()()
	path, err := c.WriteConfig()
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("the generated configuration does not load: %w", err)
	}
	fmt.Fprintf(out, "local cloud up in %s; configuration %s\n\n", time.Since(t0).Round(time.Millisecond), path)

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "keyferry-demo-" + hex.EncodeToString(b)
	faults := c.Faults()
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tTYPE\tWRITE\tREAD BACK\tVERSION\tCALLS\tTIME")
	failed := 0
	for _, sc := range cfg.Stores {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var calls counter // nil for the file store, which has no wire
		if l, ok := faults[sc.Name]; ok {
			calls = l
		}
		r := roundTrip(ctx, sc, name, calls)
		if r.err != nil {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sc.Name, sc.Type, r.write, r.read, r.version, r.calls, r.took.Round(time.Millisecond))
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
	if failed > 0 {
		return fmt.Errorf("%d stores failed the round trip", failed)
	}
	fmt.Fprintf(out, "wrote and read back %q in %d stores; values are never printed\n\n", name, len(cfg.Stores))
	if err := replicationDemo(ctx, out, c); err != nil {
		return err
	}
	return certificateDemo(ctx, out, c)
}

type result struct {
	write, read, version, calls string
	took                        time.Duration
	err                         error
}

type counter interface{ Count(glob string) int64 }

// roundTrip writes a fresh value into one store, reads it back, and compares: the value itself is never
// printed.
func roundTrip(ctx context.Context, sc *config.StoreConfig, name string, calls counter) (r result) {
	r = result{write: "-", read: "-", version: "-", calls: "-"}
	t0 := time.Now()
	var before int64
	if calls != nil {
		before = calls.Count("*")
	}
	defer func() {
		r.took = time.Since(t0)
		if calls != nil {
			r.calls = fmt.Sprint(calls.Count("*") - before)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := stores.Open(ctx, sc)
	if err != nil {
		r.err, r.write = err, "error: "+err.Error()
		return r
	}
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	want := store.Text("demo-" + hex.EncodeToString(raw))
	md, err := st.Put(ctx, name, want, store.PutOptions{Tags: map[string]string{"purpose": "demo"}})
	if err != nil {
		r.err, r.write = err, "error: "+err.Error()
		return r
	}
	r.write = "ok"
	got, err := st.Get(ctx, name)
	switch {
	case err != nil:
		r.err, r.read = err, "error: "+err.Error()
	case !got.Value.Equal(want):
		r.err, r.read = errors.New("mismatch"), "MISMATCH"
	default:
		r.read = fmt.Sprintf("identical (%d bytes)", got.Value.Len())
		r.version = md.Version
		if len(r.version) > 12 {
			r.version = r.version[:12] + "…"
		}
	}
	return r
}
