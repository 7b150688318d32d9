package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/config"
	"github.com/keyferry/keyferry/core/dispatch"
	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/stores"
	"github.com/keyferry/keyferry/localtest/cloud"
	"github.com/keyferry/keyferry/localtest/deploy"
	"github.com/keyferry/keyferry/localtest/lambdart"
)

func envNum(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

var targets = []string{"azure", "gcp", "vault"}

type counts struct{ calls, writes, throttled int64 }

func snapshot(c *cloud.Cloud) map[string]counts {
	out := map[string]counts{}
	for name, l := range c.Faults() {
		if name == "aws-ssm" {
			continue
		}
		var k counts
		q := l.QuotaThrottles()
		for api, n := range l.Calls() {
			k.calls += n
			if deploy.IsWrite(api) {
				k.writes += n - q[api]
			}
		}
		for _, n := range q {
			k.throttled += n
		}
		out[name] = k
	}
	return out
}

func since(a, b map[string]counts) (map[string]counts, counts) {
	out := map[string]counts{}
	var total counts
	for n, v := range b {
		d := counts{v.calls - a[n].calls, v.writes - a[n].writes, v.throttled - a[n].throttled}
		out[n] = d
		total.calls += d.calls
		total.writes += d.writes
		total.throttled += d.throttled
	}
	return out, total
}

// BenchmarkReplicate replicates KEYFERRY_BENCH_SECRETS (2,000) secrets from AWS Secrets Manager to Key
// Vault, Secret Manager and Vault on the local cloud, with the fault layers enforcing each store's real
// quotas multiplied by KEYFERRY_BENCH_SCALE (10), and prints: the write rate achieved on each target ÷ its
// quota, the API calls per secret of a second (no-op) sweep, the calls per replicated write, keyferry's
// speed-up over a naive sequential copier and a read-modify-write copier run in the same process under the
// same quotas, and the start-up time of the function binaries ÷ a bare Go HTTP server's.
func BenchmarkReplicate(b *testing.B) {
	n := int(envNum("KEYFERRY_BENCH_SECRETS", 2000))
	scale := envNum("KEYFERRY_BENCH_SCALE", 10)
	m := max(n/20, 20) // secrets per baseline copier
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := cloud.Start(ctx, cloud.Options{Parts: []string{cloud.AWS, cloud.Azure, cloud.GCP, cloud.Vault}, Scale: scale})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	defer c.SetEnv()()
	y := c.Config() + "replicate:\n  - {name: bench, from: {store: aws, match: [\"bench-*\"]}, to: [azure, gcp, vault]}\n"
	cfg, err := config.Parse("bench.yaml", []byte(y))
	if err != nil {
		b.Fatal(err)
	}
	sts, err := stores.OpenAll(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}

	// Seed the sources, unthrottled.
	seed := func(prefix string, count int) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for i := range count {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				v := make([]byte, 32)
				_, _ = rand.Read(v)
				if _, err := sts["aws"].Put(ctx, fmt.Sprintf("%s-%04d", prefix, i), store.Text(hex.EncodeToString(v)), store.PutOptions{}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	t0 := time.Now()
	seed("bench", n)
	seed("naive", m)
	seed("rmw", m)
	fmt.Printf("bench: seeded %d secrets in %s\n", n+2*m, time.Since(t0).Round(time.Millisecond))
	c.EnforceQuotas()

	eng, err := replicate.New(cfg.Replicate, sts, replicate.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	before := snapshot(c)
	t0 = time.Now()
	res, err := eng.Sweep(ctx, replicate.SweepOptions{})
	elapsed := time.Since(t0)
	b.StopTimer()
	per, total := since(before, snapshot(c))
	created := res.Counts[replicate.ActCreate]
	fmt.Printf("bench: first sweep of %d secrets → %d replicas in %s (%.1f secrets/s), %d failures, %d quota throttles absorbed\n",
		n, created, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), len(res.Failures), total.throttled)
	if err != nil || created != 3*n {
		b.Errorf("sweep: %d created (want %d): %v", created, 3*n, err)
	}
	// Write rate ÷ quota per target; the tightest quota is the highest ratio's store.
	quota := map[string]float64{"azure": 30 * scale, "gcp": 10 * scale}
	tight, best := "", 0.0
	for _, t := range []string{"azure", "gcp"} {
		rate := float64(per[t].writes) / elapsed.Seconds()
		r := rate / quota[t]
		fmt.Printf("bench:   %-5s %5d writes %6d calls %5d throttled: %.1f writes/s = %.2f × its write quota (%.0f/s scaled)\n",
			t, per[t].writes, per[t].calls, per[t].throttled, rate, r, quota[t])
		if r > best {
			tight, best = t, r
		}
	}
	fmt.Printf("bench:   vault %5d writes %6d calls (no quota)\n", per["vault"].writes, per["vault"].calls)
	fmt.Printf("bench:   aws   %5d calls (source: list, describe, read, mark)\n", per["aws"].calls)
	fmt.Printf("bench: RESULT write rate ÷ tightest quota (%s) = %.2f (goal ≥ 0.9); unrecovered throttles = %d\n", tight, best, len(res.Failures))
	fmt.Printf("bench: RESULT calls per replicated write = %.2f (all stores, all calls ÷ %d replicas)\n", float64(total.calls)/float64(created), created)
	b.ReportMetric(best, "rate/quota")

	// The no-op sweep.
	before = snapshot(c)
	res2, err := eng.Sweep(ctx, replicate.SweepOptions{})
	_, noop := since(before, snapshot(c))
	if err != nil || res2.Counts[replicate.ActCreate]+res2.Counts[replicate.ActUpdate] != 0 {
		b.Errorf("second sweep wrote: %v %v", res2.Counts, err)
	}
	fmt.Printf("bench: RESULT no-op sweep: %d calls for %d secrets = %.3f calls/secret (goal ≤ 0.05)\n", noop.calls, n, float64(noop.calls)/float64(n))
	b.ReportMetric(float64(noop.calls)/float64(n), "noop-calls/secret")

	// Baselines, same process, same quotas.
	naive := func(name string) error {
		sec, err := sts["aws"].Get(ctx, name)
		if err != nil {
			return err
		}
		for _, t := range targets {
			if _, err := sts[t].Put(ctx, name, sec.Value, store.PutOptions{}); err != nil {
				return err
			}
		}
		return nil
	}
	rmw := func(name string) error {
		sec, err := sts["aws"].Get(ctx, name)
		if err != nil {
			return err
		}
		for _, t := range targets {
			cur, err := sts[t].Get(ctx, name)
			if err == nil && slices.Equal(cur.Value.Bytes(), sec.Value.Bytes()) {
				continue
			}
			if _, err := sts[t].Put(ctx, name, sec.Value, store.PutOptions{}); err != nil {
				return err
			}
		}
		return nil
	}
	run := func(prefix string, f func(string) error) (time.Duration, counts) {
		before := snapshot(c)
		t0 := time.Now()
		for i := range m {
			if err := f(fmt.Sprintf("%s-%04d", prefix, i)); err != nil {
				b.Fatalf("%s copier: %v", prefix, err)
			}
		}
		d := time.Since(t0)
		_, tot := since(before, snapshot(c))
		return d, tot
	}
	kfRate := float64(n) / elapsed.Seconds()
	dn, _ := run("naive", naive)
	dr, _ := run("rmw", rmw)
	_, rmwNoop := run("rmw", rmw)
	naiveRate, rmwRate := float64(m)/dn.Seconds(), float64(m)/dr.Seconds()
	fmt.Printf("bench: RESULT speed-up over a naive sequential copier = %.1f× (%.1f vs %.1f secrets/s over %d secrets)\n", kfRate/naiveRate, kfRate, naiveRate, m)
	fmt.Printf("bench: RESULT speed-up over a read-modify-write copier = %.1f× (%.1f secrets/s); its no-op pass costs %.2f calls/secret vs keyferry's %.3f\n",
		kfRate/rmwRate, rmwRate, float64(rmwNoop.calls)/float64(m), float64(noop.calls)/float64(n))
	b.ReportMetric(kfRate/naiveRate, "speedup-naive")

	handlerInit(b, ctx, y)
}

// handlerInit starts each function binary and a bare Go HTTP server several times and compares the
// median time until each answers its first request.
func handlerInit(b *testing.B, ctx context.Context, y string) {
	dir := b.TempDir()
	bins := map[string]string{}
	for name, pkg := range map[string]string{"bare": "bench/internal/bare", "azure": "functions/azure", "gcp": "functions/gcp/cmd/function"} {
		bin, err := lambdart.Build(ctx, "github.com/keyferry/keyferry/"+pkg, dir)
		if err != nil {
			b.Fatal(err)
		}
		bins[name] = bin
	}
	median := func(bin string) time.Duration {
		var ds []time.Duration
		for range 9 {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
			ln.Close()
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "FUNCTIONS_CUSTOMHANDLER_PORT="+port, "PORT="+port, dispatch.EnvConfigYAML+"="+y)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			t0 := time.Now()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			for time.Since(t0) < 30*time.Second {
				if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
					c.Close()
					break
				}
				time.Sleep(time.Millisecond)
			}
			ds = append(ds, time.Since(t0))
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_, _ = cmd.Process.Wait()
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	bare := median(bins["bare"])
	for _, f := range []string{"azure", "gcp"} {
		d := median(bins[f])
		fi, _ := os.Stat(bins[f])
		bf, _ := os.Stat(bins["bare"])
		fmt.Printf("bench: RESULT %s handler start-up ÷ bare Go HTTP server = %.2f× (median %s vs %s; binary %.1f MB vs %.1f MB)\n",
			f, float64(d)/float64(bare), d.Round(100*time.Microsecond), bare.Round(100*time.Microsecond),
			float64(fi.Size())/1e6, float64(bf.Size())/1e6)
	}
}
