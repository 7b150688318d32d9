package rotate

import (
	"testing"
	"time"

	"github.com/keyferry/keyferry/core/replicate"
	"github.com/keyferry/keyferry/core/store"
)

func TestDueItem(t *testing.T) {
	now := time.Date(2030, 1, 10, 2, 0, 0, 0, time.UTC)
	w := newWorld(t)
	w.add(fileStore(t, "a"), nil)
	w.clk.t = now
	w.build([]Policy{
		{Name: "daily", Store: "a", Every: 24 * time.Hour, Generate: randomSpec()},
		{Name: "nightly", Store: "a", Cron: "0 3 * * *", Generate: randomSpec()},
		{Name: "monthly", Store: "a", Every: 30 * 24 * time.Hour, MaxAge: 7 * 24 * time.Hour, Generate: randomSpec()},
	}, -1)
	rfc := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	live := freshLease("00112233445566aa", now.Add(time.Minute)).canonical()
	expired := freshLease("00112233445566aa", now.Add(-time.Minute)).canonical()
	for _, c := range []struct {
		name, policy string
		md           store.Metadata
		due          bool
		since        string
		dueAt        time.Time
	}{
		{"rotated an hour ago", "daily", store.Metadata{Tags: map[string]string{TagRotated: rfc(-time.Hour)}}, false, "rotated", now.Add(23 * time.Hour)},
		{"rotated a day ago", "daily", store.Metadata{Tags: map[string]string{TagRotated: rfc(-24 * time.Hour)}}, true, "rotated", now},
		{"missed for a long time", "daily", store.Metadata{Tags: map[string]string{TagRotated: rfc(-90 * 24 * time.Hour)}}, true, "rotated", now.Add(-89 * 24 * time.Hour)},
		{"never rotated: the value's time", "daily", store.Metadata{Updated: now.Add(-25 * time.Hour), Created: now.Add(-time.Hour)}, true, "updated", now.Add(-time.Hour)},
		{"never rotated: created", "daily", store.Metadata{Created: now.Add(-time.Hour)}, false, "created", now.Add(23 * time.Hour)},
		{"compact time", "daily", store.Metadata{Tags: map[string]string{TagRotated: "20300109t010000z"}}, true, "rotated", now.Add(-time.Hour)},
		{"cron: before the next 03:00", "nightly", store.Metadata{Tags: map[string]string{TagRotated: rfc(-30 * time.Minute)}}, false, "rotated", now.Add(time.Hour)},
		{"cron: yesterday's 03:00 passed", "nightly", store.Metadata{Tags: map[string]string{TagRotated: rfc(-24 * time.Hour)}}, true, "rotated", now.Add(-23 * time.Hour)},
		{"cron: missed for days", "nightly", store.Metadata{Tags: map[string]string{TagRotated: rfc(-10 * 24 * time.Hour)}}, true, "rotated", now.Add(-239 * time.Hour)},
		{"max age before the schedule", "monthly", store.Metadata{Tags: map[string]string{TagRotated: rfc(-8 * 24 * time.Hour)}}, true, "rotated", now.Add(-24 * time.Hour)},
		{"a live lease: a run is at work", "daily", store.Metadata{Tags: map[string]string{TagRotated: rfc(-48 * time.Hour), TagRotation: live}}, false, "rotated", time.Time{}},
		{"an expired lease: interrupted", "daily", store.Metadata{Tags: map[string]string{TagRotated: rfc(-time.Hour), TagRotation: expired}}, true, "rotated", now.Add(-time.Minute)},
		{"an unreadable lease", "daily", store.Metadata{Tags: map[string]string{TagRotation: "junk"}}, true, "", now},
	} {
		t.Run(c.name, func(t *testing.T) {
			it, due := w.eng.dueItem(w.eng.byName[c.policy], c.md, now)
			if due != c.due || it.Since != c.since || !it.DueAt.Equal(c.dueAt) {
				t.Errorf("dueItem = %+v, %v; want due %v since %q at %s", it, due, c.due, c.since, c.dueAt)
			}
		})
	}
}

// TestDueListing: Due lists by policy glob from metadata alone, never a pending sibling.
func TestDueListing(t *testing.T) {
	w := newWorld(t)
	w.add(fileStore(t, "a"), nil)
	w.build([]Policy{{Name: "daily", Store: "a", Match: []string{"app/*"}, Every: 24 * time.Hour, Generate: randomSpec()}}, -1)
	for _, n := range []string{"app/one", "app/two", "app/one" + PendingSuffix, "other/x"} {
		w.write("a", n, oldValue)
	}
	if err := w.raw["a"].(store.MetadataUpdater).UpdateMetadata(ctx, "app/two", map[string]string{TagRotated: w.clk.Now().Format(time.RFC3339)}, nil); err != nil {
		t.Fatal(err)
	}
	w.c.calls = nil
	items, err := w.eng.Due(ctx)
	if err != nil || len(items) != 1 || items[0].Name != "app/one" || items[0].Since != "updated" {
		t.Fatalf("Due = %+v, %v", items, err)
	}
	for _, c := range w.c.calls {
		if c.op != "list" {
			t.Errorf("Due made a %s call", c.op)
		}
	}
}

// TestMissedTimer: a timer missed for a month rotates once, then again one period after that rotation.
func TestMissedTimer(t *testing.T) {
	for _, c := range []struct {
		name   string
		policy Policy
		next   time.Duration // from the rotation to the next due time, at most
	}{
		{"every", Policy{Every: 24 * time.Hour}, 24 * time.Hour},
		{"cron", Policy{Cron: "30 4 * * *"}, 24 * time.Hour},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t)
			w.add(fileStore(t, "a"), nil)
			w.add(fileStore(t, "b"), nil)
			w.rules = []replicate.Rule{rule("r", "a", replicate.Target{Store: "b"})}
			p := c.policy
			p.Name, p.Store, p.Generate = "p", "a", randomSpec()
			w.build([]Policy{p}, -1)
			w.write("a", "k", oldValue)
			w.sync("a", "k")
			// The clock is 30 days past the value's time: every timer since was missed.
			for round := range 2 {
				res, err := w.eng.RotateDue(ctx)
				if err != nil || len(res) != 1 {
					t.Fatalf("round %d: RotateDue = %+v, %v", round, res, err)
				}
				if n := len(w.generated()); n != round+1 {
					t.Fatalf("round %d: %d values generated", round, n)
				}
				if res, _ := w.eng.RotateDue(ctx); len(res) != 0 {
					t.Fatalf("round %d: rotated again at once: %+v", round, res)
				}
				w.clk.advance(c.next)
			}
			if got := w.value("b", "k"); got != w.generated()[1] {
				t.Errorf("the replica holds %s", redact(got))
			}
		})
	}
}
