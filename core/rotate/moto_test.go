package rotate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
	"github.com/keyferry/keyferry/core/store/awssm"
	"github.com/keyferry/keyferry/localtest/moto"
)

// One moto server for the package, started by the first AWS test.
var (
	motoOnce sync.Once
	motoSrv  *moto.Server
	motoErr  error
	motoSeq  atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if motoSrv != nil {
		_ = motoSrv.Stop()
	}
	os.Exit(code)
}

func awsStore(t *testing.T, name string) *awssm.Store {
	t.Helper()
	motoOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		motoSrv, motoErr = moto.Start(ctx, moto.Options{})
	})
	if motoErr != nil {
		t.Fatalf("the AWS tests need moto (%s): %v", moto.MakeTarget, motoErr)
	}
	retry := awssm.Retry{MaxAttempts: moto.TestMaxAttempts, MaxBackoff: moto.TestMaxBackoff}
	s, err := awssm.New(awssm.Options{Name: name, Client: func(context.Context) (*secretsmanager.Client, error) {
		return awssm.NewClient(moto.Config(motoSrv.URL), awssm.WithRetry(retry)), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// awsWorld is a primary in Secrets Manager ("aws") replicated to another Secrets Manager store ("aws2",
// under replica/…) and a file store ("b"), with the secret written and replicated. Every world has its own
// names in the shared moto.
func awsWorld(t *testing.T) (*world, named) {
	w := newWorld(t)
	w.add(awsStore(t, "aws"), nil)
	w.add(awsStore(t, "aws2"), nil)
	w.add(fileStore(t, "b"), nil)
	prefix := fmt.Sprintf("kf%d-%d", time.Now().UnixNano(), motoSeq.Add(1))
	name := prefix + "/app/db"
	w.rules = []replicate.Rule{{Name: "r", From: replicate.Source{Store: "aws", Match: []string{prefix + "/**"}},
		To: []replicate.Target{{Store: "aws2", Name: "replica/{{ .Name }}"}, {Store: "b"}}}}
	w.build([]Policy{{Name: "db", Store: "aws", Match: []string{prefix + "/app/*"}, Every: 24 * time.Hour, Generate: randomSpec(),
		Test: "check", LeaseTTL: 10 * time.Minute}}, -1)
	w.write("aws", name, oldValue)
	if n := w.sync("aws", name); n != 2 {
		t.Fatalf("replication wrote %d replicas, want 2", n)
	}
	return w, named{{"aws", name, name + PendingSuffix}, {"aws2", "replica/" + name, "replica/" + name + PendingSuffix},
		{"b", name, name + PendingSuffix}}
}

func TestAWSRotate(t *testing.T) {
	w, names := awsWorld(t)
	prim := names[0]
	old := w.describe("aws", prim.name).Version
	var pending string
	w.setHook(func(ctx context.Context, name string, v store.Value) error {
		for _, s := range names {
			if got := w.value(s.store, s.name); got != oldValue {
				t.Errorf("%s/%s: readers see %s during the test hook, want the old value", s.store, s.name, redact(got))
			}
		}
		// In Secrets Manager the pending value is a version staged AWSPENDING only.
		for _, s := range names[:2] {
			p := stageHolder(t, w, s.store, s.name, "AWSPENDING")
			if p == "" || p == stageHolder(t, w, s.store, s.name, "AWSCURRENT") {
				t.Errorf("%s/%s: AWSPENDING on %q", s.store, s.name, p)
			}
			sec, err := w.raw[s.store].(store.Versioned).GetVersion(ctx, s.name, p)
			if err != nil || !sec.Value.Equal(v) {
				t.Errorf("%s/%s: the AWSPENDING version does not hold the pending value (%v)", s.store, s.name, err)
			}
			pending = p
		}
		if got := w.value("b", names[2].sibling); got != string(v.Bytes()) {
			t.Errorf("the file replica's sibling does not hold the pending value")
		}
		return nil
	})
	res, err := w.eng.Rotate(ctx, "db", prim.name)
	if w.seen(err) != nil {
		t.Fatal(err)
	}
	gens := w.generated()
	if len(gens) != 1 || res.Version != pending {
		t.Fatalf("generated %d, result %+v, pending %s", len(gens), res, pending)
	}
	for _, s := range names {
		if got := w.value(s.store, s.name); got != gens[0] {
			t.Errorf("%s/%s holds %s, want the new value", s.store, s.name, redact(got))
		}
	}
	// AWSCURRENT moved to the pending version, AWSPREVIOUS to the old one; AWSPENDING stays on the new
	// current version, as Secrets Manager leaves a finished rotation.
	if cur, prev, pend := stageHolder(t, w, "aws", prim.name, "AWSCURRENT"), stageHolder(t, w, "aws", prim.name, "AWSPREVIOUS"),
		stageHolder(t, w, "aws", prim.name, "AWSPENDING"); cur != pending || prev != old || pend != pending {
		t.Errorf("stages: current %s previous %s pending %s; want %s, %s, %s", cur, prev, pend, pending, old, pending)
	}
	rep := w.describe("aws2", names[1].name)
	if p := rep.Provenance; rep.Version != pending || !p.Origin() || p.SourceStore != "aws" || p.SourceVersion != pending || p.ReplicaVersion != pending {
		t.Errorf("aws2 replica: version %s provenance %+v", rep.Version, p)
	}
	if n := w.sync("aws", prim.name); n != 0 {
		t.Errorf("replication wrote %d times after the rotation", n)
	}
	md := w.describe("aws", prim.name)
	if md.Tags[TagRotation] != "" || md.Tags[TagRotated] != w.clk.Now().UTC().Format(time.RFC3339) {
		t.Errorf("primary tags after the rotation: %v", md.Tags)
	}
	w.noLeak(oldValue)
}

// TestAWSRollback: a failing test discards the pending versions: AWSPENDING goes back onto the current
// version (so no rotation looks in progress), the abandoned version keeps no stage, current is untouched.
func TestAWSRollback(t *testing.T) {
	w, names := awsWorld(t)
	var pending string
	w.setHook(func(context.Context, string, store.Value) error {
		pending = stageHolder(t, w, "aws", names[0].name, "AWSPENDING")
		return errors.New("the database refused the new password")
	})
	_, err := w.eng.Rotate(ctx, "db", names[0].name)
	if w.seen(err) == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("Rotate: %v", err)
	}
	for _, s := range names {
		if got := w.value(s.store, s.name); got != oldValue {
			t.Errorf("%s/%s holds %s after the rollback", s.store, s.name, redact(got))
		}
		if s.store == "b" {
			if got := w.value(s.store, s.sibling); got != "<missing>" {
				t.Errorf("the sibling is left behind")
			}
			continue
		}
		cur := stageHolder(t, w, s.store, s.name, "AWSCURRENT")
		if p := stageHolder(t, w, s.store, s.name, "AWSPENDING"); p != cur {
			t.Errorf("%s/%s: AWSPENDING on %s, current %s", s.store, s.name, p, cur)
		}
	}
	for vi, err := range w.raw["aws"].(store.Versioned).Versions(ctx, names[0].name) {
		if err != nil {
			t.Fatal(err)
		}
		if vi.Version == pending && len(vi.Stages) != 0 {
			t.Errorf("the abandoned version keeps stages %v", vi.Stages)
		}
	}
	if l := w.leaseTag("aws", names[0].name); l != "" {
		t.Errorf("lease left: %q", l)
	}
	w.noLeak(oldValue)
}

var awsCrashPoints = []crashPoint{
	{"acquire", func(c call) bool { return c.store == "aws" && leasePhase(c, PhasePending) }, false, true},
	{"generate", func(c call) bool { return c.op == "generate" }, false, false},
	{"pending-aws", func(c call) bool { return c.store == "aws" && c.op == "put-staged" }, false, true},
	{"pending-aws2", func(c call) bool { return c.store == "aws2" && c.op == "put-staged" }, false, true},
	{"pending-b", func(c call) bool { return c.store == "b" && c.op == "put" && strings.HasSuffix(c.name, PendingSuffix) }, false, true},
	{"test", func(c call) bool { return c.op == "hook" }, false, false},
	{"promoting", func(c call) bool { return c.store == "aws" && leasePhase(c, PhasePromoting) }, false, true},
	{"promote-aws", func(c call) bool { return c.store == "aws" && c.op == "move-stage" && c.stage == "AWSCURRENT" }, true, true},
	{"promote-aws2", func(c call) bool { return c.store == "aws2" && c.op == "move-stage" && c.stage == "AWSCURRENT" }, true, true},
	{"provenance-aws2", func(c call) bool { return c.store == "aws2" && c.op == "update-metadata" }, true, true},
	{"promote-b", func(c call) bool { return c.store == "b" && c.op == "put" && !strings.HasSuffix(c.name, PendingSuffix) }, true, true},
	{"cleanup-b", func(c call) bool { return c.store == "b" && c.op == "delete" }, true, true},
	{"release", func(c call) bool {
		_, held := c.tags[TagRotation]
		return c.store == "aws" && c.op == "update-metadata" && !held
	}, true, true},
}

// TestAWSInterrupted is TestInterrupted with the primary and a replica in Secrets Manager (moto).
func TestAWSInterrupted(t *testing.T) {
	for _, cp := range awsCrashPoints {
		for _, crash := range []bool{false, true} {
			for _, after := range []bool{false, true} {
				if after && !cp.anyAfter {
					continue
				}
				mode := map[bool]string{false: "fail", true: "crash"}[crash]
				if after {
					mode += "-after"
				}
				t.Run(cp.name+"/"+mode, func(t *testing.T) {
					t.Parallel()
					w, names := awsWorld(t)
					interrupt(t, w, cp, crash, after, names)
				})
			}
		}
	}
}

func uuid4() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// TestAWSStepProtocol drives a rotation the way Secrets Manager does: the four steps with one token, each
// step sent twice (Lambda delivers at least once), once by name and once by ARN.
func TestAWSStepProtocol(t *testing.T) {
	w, names := awsWorld(t)
	prim := names[0]
	old := w.describe("aws", prim.name).Version
	token := uuid4()
	arn := "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + prim.name + "-AbC1eF"
	tested := 0
	w.setHook(func(_ context.Context, _ string, v store.Value) error {
		tested++
		if gens := w.generated(); len(gens) != 1 || string(v.Bytes()) != gens[0] {
			t.Error("the test hook did not get the pending value")
		}
		return nil
	})
	if err := w.eng.Step(ctx, StepSet, prim.name, token); err == nil || !strings.Contains(err.Error(), "run createSecret first") {
		t.Fatalf("setSecret before createSecret: %v", err)
	}
	step := func(s string) {
		t.Helper()
		for _, id := range []string{prim.name, arn} {
			if err := w.seen(w.eng.Step(ctx, s, id, token)); err != nil {
				t.Fatalf("%s (%s): %v", s, id, err)
			}
		}
	}

	step(StepCreate)
	gens := w.generated()
	if len(gens) != 1 {
		t.Fatalf("createSecret twice generated %d values, want 1", len(gens))
	}
	if p := stageHolder(t, w, "aws", prim.name, "AWSPENDING"); p != token {
		t.Fatalf("AWSPENDING on %q, want the token %s", p, token)
	}
	if l, err := parseLease(w.leaseTag("aws", prim.name)); err != nil || l.ID != token || l.Pending != token {
		t.Fatalf("lease %+v, %v", l, err)
	}
	// keyferry's own timer meets the lease Secrets Manager's rotation holds.
	if _, err := w.eng.Rotate(ctx, "db", prim.name); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("Rotate during a Secrets Manager rotation: %v", err)
	}

	step(StepSet)
	if got := w.value("b", names[2].sibling); got != gens[0] {
		t.Errorf("setSecret: the file replica's sibling holds %s", redact(got))
	}
	if p := stageHolder(t, w, "aws2", names[1].name, "AWSPENDING"); p != token {
		t.Errorf("setSecret: aws2 AWSPENDING on %q", p)
	}
	for _, s := range names {
		if got := w.value(s.store, s.name); got != oldValue {
			t.Errorf("before finishSecret %s/%s holds %s", s.store, s.name, redact(got))
		}
	}

	step(StepTest)
	if tested != 2 {
		t.Errorf("the test hook ran %d times, want 2", tested)
	}

	step(StepFinish)
	if n := len(w.generated()); n != 1 {
		t.Errorf("%d values generated for one rotation", n)
	}
	for _, s := range names {
		if got := w.value(s.store, s.name); got != gens[0] {
			t.Errorf("after finishSecret %s/%s holds %s", s.store, s.name, redact(got))
		}
		if s.store == "b" {
			if got := w.value(s.store, s.sibling); got != "<missing>" {
				t.Errorf("the sibling is left behind")
			}
		}
	}
	if cur, prev := stageHolder(t, w, "aws", prim.name, "AWSCURRENT"), stageHolder(t, w, "aws", prim.name, "AWSPREVIOUS"); cur != token || prev != old {
		t.Errorf("stages after finishSecret: current %s previous %s", cur, prev)
	}
	md := w.describe("aws", prim.name)
	if md.Tags[TagRotation] != "" || md.Tags[TagRotated] == "" {
		t.Errorf("primary tags after finishSecret: %v", md.Tags)
	}
	if n := w.sync("aws", prim.name); n != 0 {
		t.Errorf("replication wrote %d times after the rotation", n)
	}
	if items, err := w.eng.Due(ctx); err != nil || len(items) != 0 {
		t.Errorf("Due after the rotation: %+v %v", items, err)
	}
	if err := w.eng.Step(ctx, "rotate", prim.name, token); err == nil {
		t.Error("an unknown step was accepted")
	}
	w.noLeak(oldValue)
}

// TestAWSStepRecovers: createSecret finds an interrupted keyferry rotation (an expired lease) and
// recovers it before starting the one Secrets Manager asked for.
func TestAWSStepRecovers(t *testing.T) {
	w, names := awsWorld(t)
	w.c.arm(&fault{when: func(c call) bool { return c.op == "hook" }, crash: true})
	if _, err := w.eng.Rotate(ctx, "db", names[0].name); err == nil {
		t.Fatal("the crash did not stop the run")
	}
	w.c.revive()
	token := uuid4()
	if err := w.eng.Step(ctx, StepCreate, names[0].name, token); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("createSecret with a live lease: %v", err)
	}
	w.clk.advance(11 * time.Minute)
	for _, s := range []string{StepCreate, StepSet, StepTest, StepFinish} {
		if err := w.seen(w.eng.Step(ctx, s, names[0].name, token)); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	gens := w.generated()
	for _, s := range names {
		if got := w.value(s.store, s.name); got != gens[len(gens)-1] {
			t.Errorf("%s/%s holds %s", s.store, s.name, redact(got))
		}
	}
	if p := stageHolder(t, w, "aws", names[0].name, "AWSCURRENT"); p != token {
		t.Errorf("AWSCURRENT on %s, want the token", p)
	}
	w.noLeak(oldValue)
}
