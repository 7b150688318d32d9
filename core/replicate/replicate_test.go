package replicate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/audit"
	"github.com/keyferry/keyferry/core/store"
)

var ctx = context.Background()

// azureLike declares Key Vault's limits on a file store: names [0-9a-zA-Z-], case-insensitive, 25,600
// bytes, binary as base64.
var azureLike = store.Limits{NamePattern: regexp.MustCompile(`^[0-9a-zA-Z-]+$`), NameRule: "letters, digits and hyphens",
	NameMinLen: 1, NameMaxLen: 127, CaseInsensitive: true, MaxValueBytes: 25600, Binary: store.BinaryBase64, MaxTags: 15}

// textOnly declares a store that cannot hold binary values.
var textOnly = store.Limits{NameMinLen: 1, NameMaxLen: 512, MaxValueBytes: 8192, Binary: store.BinaryUnsupported, MaxTags: -1}

type fixture struct {
	t      *testing.T
	stores map[string]*spy
	eng    *Engine
	logs   *bytes.Buffer
	audit  *bytes.Buffer
	alerts *alerts
	now    time.Time
}

type alerts struct {
	mu sync.Mutex
	a  []Alert
}

func (n *alerts) Notify(_ context.Context, a Alert) error {
	n.mu.Lock()
	n.a = append(n.a, a)
	n.mu.Unlock()
	return nil
}

func newFixture(t *testing.T, rules []Rule, names ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, stores: map[string]*spy{}, logs: &bytes.Buffer{}, audit: &bytes.Buffer{}, alerts: &alerts{}}
	for _, n := range names {
		f.stores[n] = newSpy(t, n)
	}
	return f.build(rules)
}

func (f *fixture) build(rules []Rule) *fixture {
	f.t.Helper()
	m := map[string]store.Store{}
	for n, s := range f.stores {
		m[n] = s
	}
	var err error
	f.eng, err = New(rules, m, Options{Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), Audit: audit.NewJSONSink(f.audit),
		Notifier: f.alerts, MaxConcurrency: 8, MaxAttempts: 40})
	if err != nil {
		f.t.Fatal(err)
	}
	f.eng.backoffBase = time.Millisecond // the spy's faults are not time-based
	return f
}

// write is a write by someone other than keyferry (a user, an application).
func (f *fixture) write(storeName, name, value string) store.Metadata {
	f.t.Helper()
	md, err := f.stores[storeName].Store.Put(ctx, name, store.Text(value), store.PutOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // distinct version times: the file store dates versions to the nanosecond
	return md
}

func (f *fixture) value(storeName, name string) string {
	f.t.Helper()
	sec, err := f.stores[storeName].Store.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return "<missing>"
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return string(sec.Value.Bytes())
}

func (f *fixture) sync(storeName, name string) *Result {
	f.t.Helper()
	res, err := f.eng.Sync(ctx, storeName, name)
	if err != nil {
		f.t.Fatalf("Sync(%s, %s): %v", storeName, name, err)
	}
	return res
}

// settle delivers the change events of keyferry's own writes until none are left (each event is a Sync
// of the written secret), and returns how many writes happened.
func (f *fixture) settle() int {
	f.t.Helper()
	writes := 0
	for range 50 {
		progress := false
		for n, s := range f.stores {
			for _, name := range s.drain() {
				progress = true
				writes++
				f.sync(n, name)
			}
		}
		if !progress {
			return writes
		}
	}
	f.t.Fatal("replication does not go quiet")
	return 0
}

func (f *fixture) resetCounts() {
	for _, s := range f.stores {
		s.reset()
	}
}

func mkRule(name, from string, to ...string) Rule {
	r := Rule{Name: name, From: Source{Store: from}}
	for _, t := range to {
		r.To = append(r.To, Target{Store: t})
	}
	return r
}

func TestTargetName(t *testing.T) {
	for _, c := range []struct {
		tmpl, src string
		lim       store.Limits
		want      string
		err       bool
	}{
		{"", "prod/db/password", azureLike, "prod-db-password", false},
		{"", "prod/db_pass.word", azureLike, "prod-db-pass-word", false},
		{"{{ .Base }}", "prod/db/password", azureLike, "password", false},
		{"{{ .Dir | upper }}--{{ .Base }}", "prod/db/password", azureLike, "PROD-DB-password", false},
		{"app/{{ .Name }}", "x", textOnly, "app/x", false},
		{"{{ trimPrefix \"prod/\" .Name }}", "prod/a/b", textOnly, "a/b", false},
		{"{{ .SourceStore }}-{{ .TargetStore }}-{{ .Name }}", "n", azureLike, "src-tgt-n", false},
		{"", "/", azureLike, "", true},
		{"", strings.Repeat("a", 128), azureLike, "", true},
		{"{{ .Nope }}", "x", azureLike, "", true},
	} {
		got, err := TargetName(Target{Store: "tgt", Name: c.tmpl}, "src", c.src, c.lim)
		if (err != nil) != c.err || !c.err && got != c.want {
			t.Errorf("TargetName(%q, %q) = %q, %v; want %q (error %v)", c.tmpl, c.src, got, err, c.want, c.err)
		}
	}
}

func TestCheck(t *testing.T) {
	lim := map[string]store.Limits{"aws": textOnly, "azure": azureLike}
	for _, c := range []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"ok", []Rule{mkRule("r", "aws", "azure")}, ""},
		{"unknown store", []Rule{mkRule("r", "aws", "gcp")}, `target store "gcp" is not configured`},
		{"self", []Rule{mkRule("r", "aws", "aws")}, "cannot be copied onto itself"},
		{"bad template", []Rule{{Name: "r", From: Source{Store: "aws"}, To: []Target{{Store: "azure", Name: "{{ .X }}"}}}}, "name template"},
		{"static collision", []Rule{
			{Name: "a", From: Source{Store: "aws", Match: []string{"db/pass"}}, To: []Target{{Store: "azure"}}},
			{Name: "b", From: Source{Store: "aws", Match: []string{"db-pass"}}, To: []Target{{Store: "azure"}}},
		}, "both map to azure/db-pass"},
		{"reserved tag", []Rule{{Name: "r", From: Source{Store: "aws"}, To: []Target{{Store: "azure", Tags: TagPolicy{Set: map[string]string{"keyferry-x": "1"}}}}}}, "reserved prefix"},
	} {
		errs := Check(c.rules, lim)
		got := errors.Join(errs...)
		if c.want == "" && got != nil || c.want != "" && (got == nil || !strings.Contains(got.Error(), c.want)) {
			t.Errorf("%s: Check = %v, want %q", c.name, got, c.want)
		}
	}
}

func TestCreateThenQuiet(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("r", "a", "b", "c")}, "a", "b", "c")
	src := f.write("a", "app/db", "v1-canary-4d1f")
	res := f.sync("a", "app/db")
	if res.Counts[ActCreate] != 2 {
		t.Fatalf("counts %v, want 2 creates", res.Counts)
	}
	for _, tgt := range []string{"b", "c"} {
		if got := f.value(tgt, "app/db"); got != "v1-canary-4d1f" {
			t.Errorf("%s holds %d bytes, want the source's value", tgt, len(got))
		}
		md, _ := f.stores[tgt].Store.Describe(ctx, "app/db")
		p := md.Provenance
		if !p.Origin() || p.SourceStore != "a" || p.SourceName != "app/db" || p.SourceVersion != src.Version || !p.Written.Equal(src.Updated) {
			t.Errorf("%s provenance %+v does not record the origin a/app/db@%s", tgt, p, src.Version)
		}
	}
	f.settle()
	f.resetCounts()
	// The same event again, and the replicas' own events: nothing is written.
	f.sync("a", "app/db")
	f.sync("b", "app/db")
	f.sync("c", "app/db")
	for n, s := range f.stores {
		if s.writes() != 0 {
			t.Errorf("store %s: %d writes on repeated events", n, s.writes())
		}
	}
}

func TestUpdateAndOrder(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("r", "a", "b")}, "a", "b")
	f.write("a", "k", "one")
	f.sync("a", "k")
	f.write("a", "k", "two")
	if res := f.sync("a", "k"); res.Counts[ActUpdate] != 1 || f.value("b", "k") != "two" {
		t.Fatalf("update: counts %v", res.Counts)
	}
	// A replica holding a value from a newer origin is never overwritten by an older source version.
	future := &store.Provenance{SourceStore: "a", SourceName: "k", SourceVersion: "99", Written: time.Now().Add(time.Hour)}
	if _, err := f.stores["b"].Store.Put(ctx, "k", store.Text("newer"), store.PutOptions{Provenance: future}); err != nil {
		t.Fatal(err)
	}
	res := f.sync("a", "k")
	if res.Counts[ActSkip] != 1 || f.value("b", "k") != "newer" {
		t.Fatalf("late event: counts %v, b holds %q", res.Counts, f.value("b", "k"))
	}
}

func TestConflictStrategies(t *testing.T) {
	for _, c := range []struct {
		strategy OnConflict
		want     string
		action   Action
		alerts   int
	}{
		{ConflictAlert, "foreign", ActConflict, 1},
		{ConflictSkip, "foreign", ActSkip, 0},
		{ConflictOverwrite, "source-2", ActUpdate, 0},
	} {
		t.Run(string(c.strategy), func(t *testing.T) {
			r := mkRule("r", "a", "b")
			r.OnConflict = c.strategy
			f := newFixture(t, []Rule{r}, "a", "b")
			f.write("a", "k", "source-1")
			f.sync("a", "k")
			f.write("b", "k", "foreign") // someone writes the replica
			f.write("a", "k", "source-2")
			res := f.sync("b", "k") // the replica's own change event
			if res.Counts[c.action] != 1 {
				t.Fatalf("counts %v, want one %s", res.Counts, c.action)
			}
			f.sync("a", "k")
			if got := f.value("b", "k"); got != c.want {
				t.Errorf("b holds %q, want %q", got, c.want)
			}
			if got := len(f.alerts.a); got != c.alerts*2 && got != c.alerts {
				t.Errorf("%d alerts, want %d per event", got, c.alerts)
			}
			if c.strategy == ConflictAlert {
				a := f.alerts.a[0]
				if a.Kind != "replication.conflict" || a.TargetStore != "b" || a.TargetName != "k" || a.Rule != "r" {
					t.Errorf("alert %+v", a)
				}
				if !strings.Contains(f.audit.String(), `"action":"conflict"`) {
					t.Errorf("no conflict audit record:\n%s", f.audit)
				}
			}
		})
	}
}

func TestRefusalsWriteNothing(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("r", "a", "az", "txt")}, "a", "az", "txt")
	f.stores["az"].limits = &azureLike
	f.stores["txt"].limits = &textOnly
	f.build([]Rule{mkRule("r", "a", "az", "txt")})
	f.write("a", "db/pass", "x")
	f.write("a", "db-pass", "y") // both map to az/db-pass
	if _, err := f.stores["a"].Store.Put(ctx, "big", store.Text(strings.Repeat("z", 26000)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.stores["a"].Store.Put(ctx, "bin", store.Binary([]byte{0xff, 0, 1}), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := f.eng.Plan(ctx, Scope{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"az/db-pass":  "name collision",
		"az/big":      "26000 bytes",
		"txt/big":     "26000 bytes",
		"txt/bin":     "text only",
		"txt/db/pass": "",
		"txt/db-pass": "",
		"az/bin":      "",
	}
	for _, it := range p.Items {
		k := it.Target.Store + "/" + it.Target.Name
		w, ok := want[k]
		if !ok {
			t.Errorf("unexpected item %s: %s %s", k, it.Action, it.Reason)
			continue
		}
		if w == "" && it.Action != ActCreate || w != "" && (it.Action != ActRefuse || !strings.Contains(it.Reason, w)) {
			t.Errorf("%s: %s (%s), want refusal %q", k, it.Action, it.Reason, w)
		}
	}
	if f.stores["az"].writes()+f.stores["txt"].writes() != 0 {
		t.Fatal("planning wrote something")
	}
	res, _ := f.eng.Apply(ctx, p, ApplyOptions{})
	if res.Counts[ActRefuse] != 5 {
		t.Errorf("apply counts %v", res.Counts)
	}
	for _, n := range []string{"db-pass", "big"} {
		if f.value("az", n) != "<missing>" {
			t.Errorf("refused az/%s was written", n)
		}
	}
	if f.value("txt", "bin") != "<missing>" || f.value("txt", "big") != "<missing>" {
		t.Error("refused txt secret was written")
	}
}

func TestDeletePolicies(t *testing.T) {
	prop := mkRule("p", "a", "b")
	prop.Delete = DeletePropagate
	keep := mkRule("k", "a", "c")
	f := newFixture(t, []Rule{prop, keep}, "a", "b", "c")
	f.write("a", "x", "1")
	f.sync("a", "x")
	f.write("b", "y", "not keyferry's") // b/y is no replica: never deleted
	if err := f.stores["a"].Store.Delete(ctx, "x", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res := f.sync("a", "x")
	if res.Counts[ActDelete] != 1 || res.Counts[ActKeep] != 1 {
		t.Fatalf("counts %v", res.Counts)
	}
	if f.value("b", "x") != "<missing>" || f.value("c", "x") != "1" || f.value("b", "y") == "<missing>" {
		t.Error("delete policies not honoured")
	}
	// The sweep finds deletions whose events were lost.
	f.write("a", "z", "2")
	f.sync("a", "z")
	if err := f.stores["a"].Store.Delete(ctx, "z", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.Sweep(ctx, SweepOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.value("b", "z") != "<missing>" {
		t.Error("the sweep did not propagate a lost delete")
	}
}

func TestJSONKeys(t *testing.T) {
	r := mkRule("r", "a", "b")
	r.Granularity, r.Keys = JSONKeys, []string{"password"}
	f := newFixture(t, []Rule{r}, "a", "b")
	f.write("a", "db", `{"user":"app","password":"s3"}`)
	f.write("b", "db", `{"host":"db.internal"}`)
	r2 := r
	r2.OnConflict = ConflictOverwrite
	f.build([]Rule{r2})
	f.sync("a", "db")
	var got map[string]string
	if err := json.Unmarshal([]byte(f.value("b", "db")), &got); err != nil {
		t.Fatal(err)
	}
	if got["password"] != "s3" || got["host"] != "db.internal" || got["user"] != "" {
		t.Errorf("merged object has keys %v", len(got))
	}
	f.write("a", "db", `not json`)
	if res := f.sync("a", "db"); res.Counts[ActRefuse] != 1 {
		t.Errorf("a non-object source: %v", res.Counts)
	}
}

// TestMeshGoesQuiet: three stores replicating to each other; 200 changes spread over them land once in
// every peer, after which nothing more is written, and duplicate or reordered events change nothing.
func TestMeshGoesQuiet(t *testing.T) {
	names := []string{"a", "b", "c"}
	var rules []Rule
	for _, n := range names {
		var to []string
		for _, m := range names {
			if m != n {
				to = append(to, m)
			}
		}
		rules = append(rules, mkRule("from-"+n, n, to...))
	}
	f := newFixture(t, rules, names...)
	rng := rand.New(rand.NewPCG(7, 7))
	var history [][2]string
	for i := range 200 {
		where := names[rng.IntN(3)]
		secret := fmt.Sprintf("s%02d", rng.IntN(25))
		val := fmt.Sprintf("value-%d-canary", i)
		f.write(where, secret, val)
		f.resetCounts()
		f.sync(where, secret)
		writes := f.settle()
		history = append(history, [2]string{where, secret})
		if writes != 2 {
			t.Fatalf("change %d (%s/%s): %d writes, want exactly 2 (one per peer)", i, where, secret, writes)
		}
		for _, n := range names {
			if got := f.value(n, secret); got != val {
				t.Fatalf("change %d: %s/%s holds %q, want %q", i, n, secret, got, val)
			}
		}
	}
	f.resetCounts()
	// Duplicates and reordering: replay every event in a shuffled order.
	rng.Shuffle(len(history), func(i, j int) { history[i], history[j] = history[j], history[i] })
	for _, h := range history {
		for _, n := range names {
			f.sync(n, h[1])
		}
	}
	res, err := f.eng.Sweep(ctx, SweepOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	for n, s := range f.stores {
		if s.writes() != 0 {
			t.Errorf("store %s: %d writes after the mesh settled (sweep counts %v)", n, s.writes(), res.Counts)
		}
	}
}

// TestSweepConvergesUnderFaults: 20 % of all store operations fail (throttled or unavailable); the sweep
// still copies every secret, and a second sweep reads nothing but the source listing.
func TestSweepConvergesUnderFaults(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("r", "a", "b", "c")}, "a", "b", "c")
	const n = 300
	for i := range n {
		if _, err := f.stores["a"].Store.Put(ctx, fmt.Sprintf("k%03d", i), store.Text(fmt.Sprint("v", i)), store.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range f.stores {
		s.faults = 0.2
	}
	res, err := f.eng.Sweep(ctx, SweepOptions{})
	if err != nil {
		t.Fatalf("sweep under faults: %v (counts %v)", err, res.Counts)
	}
	injected := 0
	for _, s := range f.stores {
		injected += s.faulted
		s.faults = 0
	}
	if injected == 0 {
		t.Fatal("no fault was injected")
	}
	for i := range n {
		k := fmt.Sprintf("k%03d", i)
		for _, tgt := range []string{"b", "c"} {
			if got := f.value(tgt, k); got != fmt.Sprint("v", i) {
				t.Fatalf("%s/%s holds %q after the sweep", tgt, k, got)
			}
		}
	}
	t.Logf("sweep under 20%% faults: %d faults injected, counts %v, %d marked", injected, res.Counts, res.Marked)
	f.resetCounts()
	res2, err := f.eng.Sweep(ctx, SweepOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Skipped != n || f.stores["b"].total()+f.stores["c"].total() != 0 || f.stores["a"].total() != 1 {
		t.Errorf("no-op sweep: skipped %d of %d, calls a=%d b=%d c=%d", res2.Skipped, n,
			f.stores["a"].total(), f.stores["b"].total(), f.stores["c"].total())
	}
	// A changed source is planned again.
	f.write("a", "k007", "changed")
	res3, _ := f.eng.Sweep(ctx, SweepOptions{})
	if res3.Counts[ActUpdate] != 2 || f.value("b", "k007") != "changed" {
		t.Errorf("sweep after a change: %v", res3.Counts)
	}
}

// TestNoValueLeaks scans everything keyferry printed or returned for the values it copied.
func TestNoValueLeaks(t *testing.T) {
	r := mkRule("r", "a", "b", "txt")
	r.OnConflict = ConflictAlert
	f := newFixture(t, []Rule{r}, "a", "b", "txt")
	f.stores["txt"].limits = &store.Limits{NameMinLen: 1, NameMaxLen: 512, MaxValueBytes: 10, Binary: store.BinaryUnsupported, MaxTags: -1}
	f.build([]Rule{r})
	secrets := []string{"canary-LEAK-1", "canary-LEAK-2-long-enough-to-be-refused"}
	f.write("a", "one", secrets[0])
	f.write("a", "two", secrets[1])
	f.write("b", "two", "canary-LEAK-3")
	p, _ := f.eng.Plan(ctx, Scope{})
	pj, _ := json.Marshal(p)
	res, err := f.eng.Apply(ctx, p, ApplyOptions{})
	rj, _ := json.Marshal(res)
	st, _ := f.eng.Status(ctx, Scope{})
	sj, _ := json.Marshal(st)
	all := f.logs.String() + f.audit.String() + string(pj) + string(rj) + string(sj) + fmt.Sprint(err) +
		fmt.Sprintf("%v %+v %#v", p.Items, res, f.alerts.a)
	if strings.Contains(all, "canary-LEAK") {
		t.Fatal("a secret value appears in keyferry's output")
	}
	if !strings.Contains(all, "conflict") || !strings.Contains(string(pj), `"refuse"`) {
		t.Fatal("the scan saw no conflict or refusal: it cannot have checked anything")
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("r", "a", "b")}, "a", "b")
	f.write("a", "in", "1")
	f.write("a", "stale", "1")
	f.write("a", "missing", "1")
	f.write("a", "foreign", "1")
	f.eng.Sweep(ctx, SweepOptions{})
	f.write("a", "stale", "2")
	f.write("b", "foreign", "x")
	if err := f.stores["b"].Store.Delete(ctx, "missing", store.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.resetCounts()
	st, err := f.eng.Status(ctx, Scope{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range st {
		got[s.Source.Name] = s.State
	}
	want := map[string]string{"in": "in-sync", "stale": "stale", "missing": "missing", "foreign": "conflict"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if f.stores["a"].n("get")+f.stores["b"].n("get") != 0 {
		t.Error("status read a value")
	}
}

// TestReplicaLeavesOriginTargetsAlone: a replica's own event does not copy the value on to a store that
// the value's origin replicates to directly (two functions would race to write it twice); a store that
// only the replica reaches still gets it.
func TestReplicaLeavesOriginTargetsAlone(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("a-to-b", "a", "b")}, "a", "b", "c", "d")
	f.write("a", "db", "forward-canary")
	f.sync("a", "db") // b now holds a replica whose origin is a
	f.build([]Rule{mkRule("a-out", "a", "b", "c"), mkRule("b-out", "b", "c", "d")})
	p, err := f.eng.Plan(ctx, Scope{Store: "b", Name: "db"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Action{}
	for _, it := range p.Items {
		got[it.Target.Store] = it.Action
		if it.Target.Store == "c" && !strings.Contains(it.Reason, "left to the rules of a") {
			t.Errorf("c: reason %q", it.Reason)
		}
	}
	if got["c"] != ActSkip || got["d"] != ActCreate {
		t.Fatalf("plan from the replica in b: %v, want c skipped (a reaches it) and d created", got)
	}
}

// TestReplicaEventPlansOnlyThatReplica: an event on a replica re-checks that replica against its source and
// nothing else (the source's own event writes the other targets), and a replica whose origin reaches every
// one of its rules' targets is neither marked nor planned by a sweep.
func TestReplicaEventPlansOnlyThatReplica(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("a-to-b", "a", "b")}, "a", "b", "c")
	f.write("a", "db", "only-canary")
	f.sync("a", "db")
	f.build([]Rule{mkRule("a-out", "a", "b", "c"), mkRule("b-out", "b", "a", "c"), mkRule("c-out", "c", "a", "b")})
	res := f.sync("b", "db")
	if got := f.value("c", "db"); got != "<missing>" {
		t.Fatalf("an event on the replica b wrote c (%q; %v)", got, res.Counts)
	}
	f.sync("a", "db")
	if got := f.value("c", "db"); got != "only-canary" {
		t.Fatalf("c holds %q after the source's own event", got)
	}
	f.settle()
	for _, n := range []string{"b", "c"} {
		md, err := f.stores[n].Store.Describe(ctx, "db")
		if err != nil {
			t.Fatal(err)
		}
		if md.Provenance == nil || md.Provenance.Synced != "" {
			t.Errorf("replica %s carries a Synced mark (%+v): its origin covers every target", n, md.Provenance)
		}
	}
	f.resetCounts()
	sw, err := f.eng.Sweep(ctx, SweepOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sw.Skipped != 3 || sw.Counts[ActUnchanged] != 0 {
		t.Errorf("sweep: %d skipped, counts %v; want all 3 skipped without planning", sw.Skipped, sw.Counts)
	}
}

// TestRotationStateIsNotReplicated: a rotation's pending sibling is never selected, and keyferry's state
// tags are not propagated with the user's tags.
func TestRotationStateIsNotReplicated(t *testing.T) {
	r := mkRule("r", "a", "b")
	r.To[0].Tags = TagPolicy{Propagate: true}
	f := newFixture(t, []Rule{r}, "a", "b")
	if _, err := f.stores["a"].Store.Put(ctx, "db", store.Text("state-canary"), store.PutOptions{
		Tags: map[string]string{"team": "pay", store.StatePrefix + "rotated": "2026-01-01T00:00:00Z"}}); err != nil {
		t.Fatal(err)
	}
	f.write("a", "db"+store.PendingSuffix, "pending-canary")
	f.sync("a", "db")
	f.sync("a", "db"+store.PendingSuffix)
	if got := f.value("b", "db"+store.PendingSuffix); got != "<missing>" {
		t.Fatalf("the pending sibling was replicated: %q", got)
	}
	md, err := f.stores["b"].Store.Describe(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	if md.Tags["team"] != "pay" || md.Tags[store.StatePrefix+"rotated"] != "" {
		t.Fatalf("replica tags %v", md.Tags)
	}
}

// TestReplicaMidWriteIsNotCopied: a replica caught between its value write and its provenance write (GCP,
// Vault) looks like a new write; when the other replica already holds the same bytes, nothing is copied.
// A real foreign write to it (different bytes) still is.
func TestReplicaMidWriteIsNotCopied(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("a-out", "a", "b", "c"), mkRule("b-out", "b", "c")}, "a", "b", "c")
	f.write("a", "db", "inflight-canary")
	f.sync("a", "db")
	f.settle()
	bmd, err := f.stores["b"].Store.Describe(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	stale := *bmd.Provenance
	stale.ReplicaVersion = bmd.Version // as GCP and Vault record it: the version keyferry wrote
	// b gets its next version (same bytes) but still carries the record of the previous one.
	if _, err := f.stores["b"].Store.Put(ctx, "db", store.Text("inflight-canary"), store.PutOptions{Provenance: &stale}); err != nil {
		t.Fatal(err)
	}
	if err := f.stores["b"].Store.(store.MetadataUpdater).UpdateMetadata(ctx, "db", nil, &stale); err != nil {
		t.Fatal(err)
	}
	f.resetCounts()
	f.sync("b", "db")
	if w := f.stores["c"].writes(); w != 0 {
		t.Fatalf("c was written %d times for a value it already holds", w)
	}
	// A foreign write to b with other bytes is copied on.
	if _, err := f.stores["b"].Store.Put(ctx, "db", store.Text("foreign-canary"), store.PutOptions{Provenance: &stale}); err != nil {
		t.Fatal(err)
	}
	if err := f.stores["b"].Store.(store.MetadataUpdater).UpdateMetadata(ctx, "db", nil, &stale); err != nil {
		t.Fatal(err)
	}
	res := f.sync("b", "db")
	if got := f.value("c", "db"); got != "foreign-canary" {
		for _, it := range res.Items {
			t.Logf("%s → %s: %s (%s)", it.Source, it.Target, it.Action, it.Reason)
		}
		t.Fatalf("c holds %q after a foreign write to b", got)
	}
}

// TestHoldLeavesSourceAlone: a source Options.Hold names is neither copied nor marked; once released, the
// next Sync copies it.
func TestHoldLeavesSourceAlone(t *testing.T) {
	f := newFixture(t, []Rule{mkRule("r", "a", "b")}, "a", "b")
	held := "a rotation is promoting it"
	f.eng.opts.Hold = func(md store.Metadata) string {
		if md.Name == "db" {
			return held
		}
		return ""
	}
	f.write("a", "db", "v1")
	f.sync("a", "db")
	if got := f.value("b", "db"); got != "<missing>" {
		t.Fatalf("a held source was copied: %q", got)
	}
	if md, _ := f.stores["a"].Store.Describe(ctx, "db"); md.Provenance != nil && md.Provenance.Synced != "" {
		t.Fatalf("a held source was marked: %+v", md.Provenance)
	}
	if !strings.Contains(f.logs.String(), held) {
		t.Error("no log line says why the source was left alone")
	}
	held = ""
	f.sync("a", "db")
	if got := f.value("b", "db"); got != "v1" {
		t.Fatalf("after release: %q", got)
	}
}

// tagAfterRead is a store on which someone (a rotation) changes a tag of the secret right after
// replication has read its value — between planning and the Synced mark.
type tagAfterRead struct {
	*spy
	once sync.Once
}

func (s *tagAfterRead) Get(ctx context.Context, name string) (store.Secret, error) {
	sec, err := s.spy.Get(ctx, name)
	s.once.Do(func() {
		md, derr := s.spy.Store.Describe(ctx, name)
		if derr != nil {
			panic(derr)
		}
		tags := map[string]string{store.StatePrefix + "rotation": "lease"}
		for k, v := range md.Tags {
			tags[k] = v
		}
		if uerr := s.spy.Store.(store.MetadataUpdater).UpdateMetadata(ctx, name, tags, md.Provenance); uerr != nil {
			panic(uerr)
		}
	})
	return sec, err
}

// TestMarkKeepsTagsWrittenMeanwhile: the Synced mark rewrites the source's tags from a fresh read, so a
// tag written while the source was being replicated survives the mark.
func TestMarkKeepsTagsWrittenMeanwhile(t *testing.T) {
	f := newFixture(t, nil, "b")
	f.stores["a"] = newSpy(t, "a")
	src := &tagAfterRead{spy: f.stores["a"]}
	m := map[string]store.Store{"a": src, "b": f.stores["b"]}
	eng, err := New([]Rule{mkRule("r", "a", "b")}, m, Options{Logger: slog.New(slog.NewJSONHandler(f.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.write("a", "db", "v1")
	if _, err := eng.Sync(ctx, "a", "db"); err != nil {
		t.Fatal(err)
	}
	md, err := f.stores["a"].Store.Describe(ctx, "db")
	if err != nil {
		t.Fatal(err)
	}
	if md.Tags[store.StatePrefix+"rotation"] != "lease" {
		t.Fatalf("the mark wrote back stale tags: %v", md.Tags)
	}
	if md.Provenance == nil || md.Provenance.Synced == "" {
		t.Fatalf("the source was not marked: %+v", md.Provenance)
	}
}
