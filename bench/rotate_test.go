package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/event"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/rotate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/cloud"
	"github.com/keyferry/keyferry/localtest/fault"
	"github.com/keyferry/keyferry/localtest/logbuf"
)

// BenchmarkRotate rotates KEYFERRY_BENCH_ROTATE_SECRETS (500) secrets whose primary is AWS Secrets
// Manager, each replicated to Key Vault, Secret Manager and Vault, on the local cloud with the fault layers
// enforcing each store's real quotas multiplied by KEYFERRY_BENCH_SCALE (10). Seeding and the first
// replication run unthrottled and untimed; then the quotas are enforced (their buckets start full) and the
// timer job production runs — dispatch's scheduled sweep, which rotates every due secret after the sweep —
// is timed. It prints the elapsed time, the quota-bound minimum for the calls the run made and the ratio of
// the two, the calls per rotated secret in each store, and fails if any secret is not rotated everywhere
// or leaves a pending value behind.
func BenchmarkRotate(b *testing.B) {
	n := int(envNum("KEYFERRY_BENCH_ROTATE_SECRETS", 500))
	scale := envNum("KEYFERRY_BENCH_SCALE", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	c, err := cloud.Start(ctx, cloud.Options{Parts: []string{cloud.AWS, cloud.Azure, cloud.GCP, cloud.Vault}, Scale: scale})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	defer c.SetEnv()()
	y := c.Config() + `replicate:
  - {name: bench, from: {store: aws, match: ["rot-*"]}, to: [azure, gcp, vault]}
rotate:
  - {name: bench, store: aws, match: ["rot-*"], every: 1d, generate: {password: {length: 32}}}
`
	cfg, err := config.Parse("bench.yaml", []byte(y))
	if err != nil {
		b.Fatal(err)
	}
	sts, err := stores.OpenAll(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	name := func(i int) string { return fmt.Sprintf("rot-%04d", i) }

	// Seed, unthrottled: every secret last rotated three days ago, so a daily policy finds all of them due.
	t0 := time.Now()
	old := make([]string, n)
	last := time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)
	parallel(n, 32, func(i int) {
		v := make([]byte, 24)
		_, _ = rand.Read(v)
		old[i] = hex.EncodeToString(v)
		if _, err := sts["aws"].Put(ctx, name(i), store.Text(old[i]), store.PutOptions{Tags: map[string]string{rotate.TagRotated: last}}); err != nil {
			b.Error(err)
		}
	})
	eng, err := replicate.New(cfg.Replicate, sts, replicate.Options{})
	if err != nil {
		b.Fatal(err)
	}
	res, err := eng.Sweep(ctx, replicate.SweepOptions{})
	if err != nil || res.Counts[replicate.ActCreate] != 3*n {
		b.Fatalf("replicating the seeds: %v created (want %d): %v", res.Counts, 3*n, err)
	}
	fmt.Printf("bench: seeded and replicated %d secrets (%d replicas) in %s\n", n, 3*n, time.Since(t0).Round(time.Millisecond))

	logs := &logbuf.Buffer{}
	core, err := dispatch.New(ctx, cfg, dispatch.Options{Stores: sts, Audit: audit.Discard,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		b.Fatal(err)
	}

	c.EnforceQuotas() // fresh buckets: each starts with its burst
	b.ResetTimer()
	beforeAPI := apiCalls(c)
	before := snapshot(c)
	t0 = time.Now()
	stop := timeline(c)
	rep, err := core.Schedule(ctx, event.Schedule{Job: "sweep"})
	elapsed := time.Since(t0)
	stop()
	b.StopTimer()
	per, total := since(before, snapshot(c))
	used := apiDelta(beforeAPI, apiCalls(c))
	for _, l := range c.Faults() {
		l.SetRules() // verification runs unthrottled
	}
	fmt.Printf("bench: timer job: %s in %s\n", rep.Summary, elapsed.Round(time.Millisecond))
	if err != nil {
		b.Errorf("timer job: %v\n%s", err, tail(logs.String(), 20))
	}

	// The quota-bound minimum: a token bucket of rate r and burst B serves k calls in no less than
	// max(0, k−B)/r (the burst is there at the start, every further call waits for a refill), so the run can
	// be no faster than the slowest bucket: max over every store's buckets of (k − B)/r, where k counts the
	// calls the run made that the bucket admitted (throttled attempts take no token and are excluded).
	bound, binding, bindingUse := 0.0, "", 0.0
	fmt.Printf("bench:   quota buckets (calls admitted during the run, rate and burst at scale %g):\n", scale)
	for _, bk := range buckets(cloud.Quotas(), used, scale) {
		if bk.calls == 0 {
			continue
		}
		d := max(0, float64(bk.calls)-bk.burst) / bk.rate
		fmt.Printf("bench:     %-5s %-32s %6d calls ÷ %6.0f/s (burst %4.0f) ≥ %6.2f s\n", bk.store, bk.name, bk.calls, bk.rate, bk.burst, d)
		if d > bound {
			bound, binding, bindingUse = d, bk.store+" "+bk.name, float64(bk.calls)/elapsed.Seconds()/bk.rate
		}
	}
	for _, st := range []string{"aws", "azure", "gcp", "vault"} {
		p := per[st]
		fmt.Printf("bench:   %-5s %6d calls %6d writes %6d throttled: %.2f calls, %.2f writes per rotated secret\n",
			st, p.calls, p.writes, p.throttled, float64(p.calls)/float64(n), float64(p.writes)/float64(n))
	}
	if os.Getenv("KEYFERRY_BENCH_VERBOSE") != "" {
		for _, st := range []string{"aws", "azure", "gcp", "vault"} {
			apis := slices.Sorted(maps.Keys(used[st]))
			for _, api := range apis {
				fmt.Printf("bench:     %-5s %-40s %6d admitted\n", st, api, used[st][api])
			}
		}
	}
	fmt.Printf("bench:   all   %6d calls %6d writes %6d throttled\n", total.calls, total.writes, total.throttled)

	failures := verifyRotated(ctx, b, sts, n, name, old)
	ratio := elapsed.Seconds() / bound
	fmt.Printf("bench: RESULT rotated %d secrets (primary + 3 replicas each) in %s; quota-bound minimum %.2f s (binding: %s)\n",
		n, elapsed.Round(time.Millisecond), bound, binding)
	fmt.Printf("bench: RESULT time ÷ quota-bound minimum = %.2f (goal ≤ 1.15); failures = %d\n", ratio, failures)
	// Where the time went when it is not the quota: the binding bucket's use, and each emulator's call rate
	// (moto, a single Python process, serves a few hundred calls a second on a small machine).
	fmt.Printf("bench: RESULT the binding bucket admitted %.0f%% of its rate on average; calls served per second: aws %.0f, azure %.0f, gcp %.0f, vault %.0f\n",
		100*bindingUse, float64(per["aws"].calls)/elapsed.Seconds(), float64(per["azure"].calls)/elapsed.Seconds(),
		float64(per["gcp"].calls)/elapsed.Seconds(), float64(per["vault"].calls)/elapsed.Seconds())
	b.ReportMetric(ratio, "time/minimum")
	b.ReportMetric(float64(total.calls)/float64(n), "calls/secret")
	if failures > 0 {
		b.Errorf("%d of %d secrets were not rotated everywhere or left a pending value\n%s", failures, n, tail(logs.String(), 20))
	}
}

// verifyRotated checks every secret: the primary holds a new value, every replica holds exactly it, no
// pending sibling or lease is left, and in Secrets Manager AWSPENDING is on no version but the current one.
// It returns the number of secrets that fail and reports the first few.
func verifyRotated(ctx context.Context, b *testing.B, sts map[string]store.Store, n int, name func(int) string, old []string) int {
	var mu sync.Mutex
	var bad []string
	fail := func(format string, args ...any) {
		mu.Lock()
		bad = append(bad, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	parallel(n, 32, func(i int) {
		nm := name(i)
		prim, err := sts["aws"].Get(ctx, nm)
		switch {
		case err != nil:
			fail("%s: primary: %v", nm, err)
			return
		case string(prim.Value.Bytes()) == old[i]:
			fail("%s: the primary still holds its old value", nm)
			return
		case prim.Metadata.Tags[rotate.TagRotation] != "":
			fail("%s: a lease is left on the primary", nm)
			return
		}
		for _, st := range targets {
			sec, err := sts[st].Get(ctx, nm)
			if err != nil || !sec.Value.Equal(prim.Value) {
				fail("%s: %s does not hold the primary's new value (%v)", nm, st, err)
				return
			}
		}
		for vi, err := range sts["aws"].(store.Versioned).Versions(ctx, nm) {
			if err != nil {
				fail("%s: versions: %v", nm, err)
				return
			}
			if slices.Contains(vi.Stages, "AWSPENDING") && !slices.Contains(vi.Stages, "AWSCURRENT") {
				fail("%s: AWSPENDING is left on a version that is not current", nm)
				return
			}
		}
	})
	// Pending siblings: none may be left in any store.
	for _, st := range append([]string{"aws"}, targets...) {
		for md, err := range sts[st].List(ctx, store.ListOptions{Prefix: "rot-"}) {
			if err != nil {
				fail("%s: list: %v", st, err)
				break
			}
			if strings.HasSuffix(strings.ToLower(md.Name), strings.ToLower(rotate.PendingSuffix)) {
				fail("%s: pending sibling %s is left", st, md.Name)
			}
		}
	}
	sort.Strings(bad)
	for i, s := range bad {
		if i == 10 {
			b.Logf("… and %d more", len(bad)-10)
			break
		}
		b.Log(s)
	}
	return len(bad)
}

// bucket is one quota token bucket of a store and the calls it admitted.
type bucket struct {
	store, name string
	rate, burst float64
	calls       int64
}

// buckets groups the admitted calls of each store by the token bucket that limits them, the way the fault
// layer does (a rule's Bucket, else one bucket per rule and API). A call matching several rules draws from
// each (Key Vault's SetSecret from its own bucket and the all-transactions one).
func buckets(quotas map[string][]fault.Rule, used map[string]map[string]int64, scale float64) []bucket {
	var out []bucket
	for _, st := range []string{cloud.AWS, cloud.Azure, cloud.GCP} {
		idx := map[string]int{}
		for i, r := range quotas[st] {
			if r.Rate <= 0 {
				continue
			}
			for api, k := range used[st] {
				if ok, _ := path.Match(r.API, api); !ok {
					continue
				}
				key, label := fmt.Sprintf("%d %s", i, api), api
				if r.Bucket != "" {
					key, label = "bucket "+r.Bucket, r.Bucket
				}
				j, ok := idx[key]
				if !ok {
					j = len(out)
					idx[key] = j
					out = append(out, bucket{store: st, name: label, rate: r.Rate * scale, burst: float64(max(r.Burst, 1))})
				}
				out[j].calls += k
			}
		}
	}
	return out
}

// apiCalls is, per store and API, the calls the fault layers admitted (arrived minus quota throttles).
func apiCalls(c *cloud.Cloud) map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for st, l := range c.Faults() {
		if st == "aws-ssm" {
			continue
		}
		q := l.QuotaThrottles()
		m := map[string]int64{}
		for api, k := range l.Calls() {
			m[api] = k - q[api]
		}
		out[st] = m
	}
	return out
}

func apiDelta(a, b map[string]map[string]int64) map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for st, m := range b {
		out[st] = map[string]int64{}
		for api, k := range m {
			if d := k - a[st][api]; d != 0 {
				out[st][api] = d
			}
		}
	}
	return out
}

// timeline prints, with KEYFERRY_BENCH_VERBOSE set, each second's calls per store (admitted/throttled)
// until the returned function is called.
func timeline(c *cloud.Cloud) (stop func()) {
	if os.Getenv("KEYFERRY_BENCH_VERBOSE") == "" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		prev := snapshot(c)
		for s := 1; ; s++ {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
			cur := snapshot(c)
			d, _ := since(prev, cur)
			prev = cur
			var b strings.Builder
			for _, st := range []string{"aws", "azure", "gcp", "vault"} {
				fmt.Fprintf(&b, " %s %4d/%-4d", st, d[st].calls-d[st].throttled, d[st].throttled)
			}
			fmt.Printf("bench:   t=%3ds%s\n", s, b.String())
		}
	}()
	return func() { close(done); <-finished }
}

// parallel runs f(0..n-1) on at most width goroutines.
func parallel(n, width int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, width)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// tail is the last k lines of s.
func tail(s string, k int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > k {
		lines = lines[len(lines)-k:]
	}
	return strings.Join(lines, "\n")
}
