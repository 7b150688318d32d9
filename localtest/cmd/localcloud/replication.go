package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/rotate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/cloud"
	"github.com/keyferry/keyferry/localtest/deploy"
)

// replicationDemo deploys the functions on the cloud and shows replication through them.
func replicationDemo(ctx context.Context, out io.Writer, c *cloud.Cloud) error {
	y := c.Config() + demoRules
	cfg, err := config.Parse("demo.yaml", []byte(y))
	if err != nil {
		return err
	}
	sts, err := stores.OpenAll(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "deploying the functions on the local cloud (go build, cached) ...")
	t0 := time.Now()
	fn, err := deploy.Start(ctx, c, y)
	if err != nil {
		return err
	}
	defer fn.Stop()
	fmt.Fprintf(out, "  AWS Lambda bootstrap, Azure custom handler and GCP function up in %s\n\n", time.Since(t0).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHANGED IN\tSECRET\tREACHED\tTIME\tWRITES PER STORE")
	for _, from := range []string{"aws", "azure", "gcp"} {
		before, err := fn.Settle(ctx)
		if err != nil {
			return err
		}
		name := "demo-" + from + "-" + suffix()
		want := store.Text("demo-" + suffix())
		t0 := time.Now()
		if _, err := sts[from].Put(ctx, name, want, store.PutOptions{}); err != nil {
			return err
		}
		var reached []string
		for len(reached) < 3 {
			reached = reached[:0]
			for _, st := range []string{"aws", "azure", "gcp", "vault"} {
				if st == from {
					continue
				}
				if got, err := sts[st].Get(ctx, name); err == nil && got.Value.Equal(want) {
					reached = append(reached, st)
				}
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s did not reach every peer: %w\n%s", name, ctx.Err(), fn.Logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(t0)
		after, err := fn.Settle(ctx)
		if err != nil {
			return err
		}
		var w []string
		for _, st := range []string{"aws", "azure", "gcp", "vault"} {
			w = append(w, fmt.Sprintf("%s %d", st, after[st]-before[st]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", from, name, strings.Join(reached, ", "), took.Round(time.Millisecond), strings.Join(w, ", "))
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "  (writes include the user's own write and keyferry's one-tag 'synced' mark on the source; then quiet)")

	// A foreign write to a replica, alerted rather than overwritten.
	name := "guarded-" + suffix()
	if _, err := sts["aws"].Put(ctx, name, store.Text("demo-"+suffix()), store.PutOptions{}); err != nil {
		return err
	}
	if _, err := fn.Settle(ctx); err != nil {
		return err
	}
	foreign := store.Text("demo-foreign-" + suffix())
	if _, err := sts["vault"].Put(ctx, name, foreign, store.PutOptions{}); err != nil {
		return err
	}
	if _, err := sts["aws"].Put(ctx, name, store.Text("demo-"+suffix()), store.PutOptions{}); err != nil {
		return err
	}
	if _, err := fn.Settle(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nforeign write: someone wrote vault/%s directly, then aws/%s changed:\n", name, name)
	for _, line := range strings.Split(fn.Logs(), "\n") {
		if strings.Contains(line, `"msg":"alert"`) && strings.Contains(line, name) {
			fmt.Fprintln(out, "  alert:", line)
			break
		}
	}
	if got, err := sts["vault"].Get(ctx, name); err == nil && got.Value.Equal(foreign) {
		fmt.Fprintln(out, "  vault keeps the foreign value (on_conflict: alert writes nothing)")
	} else {
		return fmt.Errorf("the foreign write to vault/%s was not left alone", name)
	}
	return rotationDemo(ctx, out, fn, sts)
}

// rotationDemo: a secret last rotated three days ago under a daily policy is rotated by the AWS function's
// next timer; the new value lands in every replica before it becomes current, and ends identical everywhere.
func rotationDemo(ctx context.Context, out io.Writer, fn *deploy.Functions, sts map[string]store.Store) error {
	name := "rot-" + suffix()
	old := time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)
	if _, err := sts["aws"].Put(ctx, name, store.Text("demo-"+suffix()), store.PutOptions{Tags: map[string]string{rotate.TagRotated: old}}); err != nil {
		return err
	}
	if _, err := fn.Settle(ctx); err != nil {
		return err
	}
	before := map[string]string{}
	for _, st := range []string{"aws", "azure", "gcp", "vault"} {
		md, err := sts[st].Describe(ctx, name)
		if err != nil {
			return fmt.Errorf("%s/%s before the rotation: %w", st, name, err)
		}
		before[st] = md.Version
	}
	fmt.Fprintf(out, "\nrotation: aws/%s was last rotated 3 days ago under a daily policy; the AWS function's timer fires:\n", name)
	sched := []byte(`{"version":"0","id":"demo-timer","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}`)
	o, err := fn.Lambda.Invoke(ctx, sched)
	if err != nil || o.Err {
		return fmt.Errorf("the scheduled run failed: %s %v", o.Payload, err)
	}
	fmt.Fprintf(out, "  %s\n", strings.Trim(string(o.Payload), `"`))
	if _, err := fn.Settle(ctx); err != nil {
		return err
	}
	primary, err := sts["aws"].Get(ctx, name)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tVERSION BEFORE\tVERSION AFTER\tSAME VALUE AS THE PRIMARY")
	for _, st := range []string{"aws", "azure", "gcp", "vault"} {
		sec, err := sts[st].Get(ctx, name)
		if err != nil {
			return err
		}
		same := sec.Value.Equal(primary.Value)
		if !same || sec.Metadata.Version == before[st] {
			return fmt.Errorf("%s/%s was not rotated", st, name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", st, short(before[st]), short(sec.Metadata.Version), same)
	}
	_ = tw.Flush()
	fmt.Fprintln(out, "  (the new value was pending in every store before it became current anywhere)")
	return nil
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12] + "…"
	}
	return v
}

func suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
