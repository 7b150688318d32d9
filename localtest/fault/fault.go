// Package fault is the local cloud's one fault and quota layer. It sits in front of every emulator —
// as HTTP middleware or reverse proxy (moto, Vault, the Key Vault emulator) or as gRPC server interceptors
// (the GCP emulators) — and can enforce token-bucket quotas per API, inject throttling shaped the way each
// real service throttles, inject server errors, latency and connection resets, and count every call per API
// so that tests and benchmarks can read what really went over the wire.
package fault

import (
	"math/rand/v2"
	"path"
	"sort"
	"sync"
	"time"
)

// Rule applies to every API whose name matches the glob API (path.Match syntax, "*" for all).
// API names look like "secretsmanager:PutSecretValue", "ssm:GetParameter", "keyvault:SetSecret",
// "vault:kv-write", "secretmanager:AddSecretVersion".
type Rule struct {
	API string

	// Quota: a token bucket refilled at Rate per second (times the layer's scale) holding Burst tokens.
	// A call finding it empty is throttled. Rate 0 means no quota.
	Rate  float64
	Burst int
	// Bucket, when set, makes every rule with the same Bucket draw from one token bucket: a quota shared
	// by several APIs (GCP's per-project write quota, Secrets Manager's combined 50 TPS). The first such
	// rule's Rate and Burst size it. Empty: one bucket per API the rule matches.
	Bucket string

	Throttle    float64       // probability of an injected throttle
	ServerError float64       // probability of an injected 5xx / UNAVAILABLE
	Reset       float64       // probability of a reset connection
	Latency     time.Duration // added before the call is served
	RetryAfter  time.Duration // sent with throttles (rounded up to whole seconds on HTTP); default 1s
}

// Outcome is what the layer decided for one call.
type Outcome int

const (
	Pass Outcome = iota
	Throttled
	ServerError
	ResetConn
)

// Layer holds the rules, the buckets and the counters. It is safe for concurrent use.
type Layer struct {
	mu       sync.Mutex
	scale    float64
	rules    []Rule
	buckets  map[string]*bucket // by rule index + API
	calls    map[string]int64
	injected map[string]int64
	quota    map[string]int64 // throttles caused by quotas (subset of injected)
	rng      *rand.Rand
	now      func() time.Time
}

// New returns a layer with no rules: everything passes and is counted. scale multiplies every quota
// rate (1 = the real quotas; 0.1 = a tenth of them); seed makes injected faults repeatable.
func New(scale float64, seed uint64) *Layer {
	if scale <= 0 {
		scale = 1
	}
	return &Layer{
		scale: scale, buckets: map[string]*bucket{}, calls: map[string]int64{},
		injected: map[string]int64{}, quota: map[string]int64{},
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: time.Now,
	}
}

// SetRules replaces the rules (and empties the quota buckets). Counters are kept.
func (l *Layer) SetRules(rules ...Rule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rules = append([]Rule(nil), rules...)
	l.buckets = map[string]*bucket{}
}

// Scale is the quota scale factor.
func (l *Layer) Scale() float64 { return l.scale }

// Decide counts a call to api and decides its fate. It returns the matching rule (zero if none).
func (l *Layer) Decide(api string) (Outcome, Rule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[api]++
	var latency time.Duration
	var out Outcome
	var hit Rule
	for i, r := range l.rules {
		if ok, _ := path.Match(r.API, api); !ok {
			continue
		}
		if r.Latency > latency {
			latency = r.Latency
		}
		if out != Pass {
			continue
		}
		hit = r
		if r.Rate > 0 {
			key := string(rune('A'+i)) + api
			if r.Bucket != "" {
				key = "bucket:" + r.Bucket
			}
			b := l.buckets[key]
			if b == nil {
				burst := float64(max(r.Burst, 1))
				b = &bucket{rate: r.Rate * l.scale, burst: burst, tokens: burst, last: l.now()}
				l.buckets[key] = b
			}
			if !b.take(l.now()) {
				out = Throttled
				l.quota[api]++
				continue
			}
		}
		switch p := l.rng.Float64(); {
		case p < r.Throttle:
			out = Throttled
		case p < r.Throttle+r.ServerError:
			out = ServerError
		case p < r.Throttle+r.ServerError+r.Reset:
			out = ResetConn
		}
	}
	if out != Pass {
		l.injected[api]++
	}
	hit.Latency = latency
	if hit.RetryAfter <= 0 {
		hit.RetryAfter = time.Second
	}
	return out, hit
}

// Calls returns a copy of the per-API call counters (every call that arrived, faulted or not).
func (l *Layer) Calls() map[string]int64 { return l.copy(l.calls) }

// Injected returns a copy of the per-API counters of faults the layer injected (throttles, errors, resets).
func (l *Layer) Injected() map[string]int64 { return l.copy(l.injected) }

// QuotaThrottles returns a copy of the per-API counters of throttles caused by quotas.
func (l *Layer) QuotaThrottles() map[string]int64 { return l.copy(l.quota) }

// Count is the number of calls to APIs matching the glob.
func (l *Layer) Count(glob string) int64 { return sumMatching(l.Calls(), glob) }

// InjectedCount is the number of injected faults on APIs matching the glob.
func (l *Layer) InjectedCount(glob string) int64 { return sumMatching(l.Injected(), glob) }

// ResetCounters zeroes every counter.
func (l *Layer) ResetCounters() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls, l.injected, l.quota = map[string]int64{}, map[string]int64{}, map[string]int64{}
}

// APIs lists the API names seen so far, sorted.
func (l *Layer) APIs() []string {
	c := l.Calls()
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (l *Layer) copy(m map[string]int64) map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sumMatching(m map[string]int64, glob string) int64 {
	var n int64
	for k, v := range m {
		if ok, _ := path.Match(glob, k); ok {
			n += v
		}
	}
	return n
}

type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *bucket) take(now time.Time) bool {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}
