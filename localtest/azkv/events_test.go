package azkv

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyferry/keyferry/core/event"
)

// TestEventsForNewVersions: each SetSecret publishes one SecretNewVersionCreated in the Event Grid schema
// that keyferry's decoder reads back (vault, name, version, NBF/EXP as numbers or null); the value never
// appears in an event, and deletes publish nothing, as with the real system topic.
func TestEventsForNewVersions(t *testing.T) {
	got := make(chan []byte, 8)
	e := newEnv(t, Options{VaultName: "kv-prod", Events: func(b []byte) { got <- b }})
	c := e.client(t, nil)
	exp := time.Unix(1900000000, 0)
	r1 := set(t, c, "db-password", "event-secret-value", azsecrets.SetSecretParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}})
	r2 := set(t, c, "db-password", "event-secret-value-2", azsecrets.SetSecretParameters{})
	if _, err := c.DeleteSecret(ctxT(t), "db-password", nil); err != nil {
		t.Fatal(err)
	}
	var evs []event.Change
	for i := 0; i < 2; i++ {
		select {
		case b := <-got:
			if strings.Contains(string(b), "event-secret-value") {
				t.Fatal("an event carries the value")
			}
			var raw map[string]any
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			if raw["eventType"] != "Microsoft.KeyVault.SecretNewVersionCreated" || raw["subject"] != "db-password" ||
				!strings.HasSuffix(raw["topic"].(string), "/providers/Microsoft.KeyVault/vaults/kv-prod") {
				t.Fatalf("event %s", b)
			}
			d, err := event.DecodeEventGrid(b)
			if err != nil || d.Change == nil {
				t.Fatalf("keyferry cannot decode the emulator's event: %v\n%s", err, b)
			}
			evs = append(evs, *d.Change)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d events, want 2", i)
		}
	}
	select {
	case b := <-got:
		t.Fatalf("a third event (deletes publish nothing): %s", b)
	case <-time.After(200 * time.Millisecond):
	}
	versions := map[string]bool{}
	for _, ch := range evs {
		if ch.Name != "db-password" || ch.Vault != "kv-prod" {
			t.Errorf("decoded %+v", ch)
		}
		versions[ch.Version] = true
	}
	if !versions[r1.ID.Version()] || !versions[r2.ID.Version()] {
		t.Errorf("versions %v, want %s and %s", versions, r1.ID.Version(), r2.ID.Version())
	}
}

// TestExpiryEvents: the expiry job publishes SecretNearExpiry for a current version whose exp is within 30
// days, SecretExpired for one whose exp has passed, nothing for secrets without exp, with a later exp, or
// deleted; each once per version; a new current version is judged afresh. keyferry's decoder reads
// SecretNearExpiry as a rotation request.
func TestExpiryEvents(t *testing.T) {
	got := make(chan []byte, 32)
	e := newEnv(t, Options{VaultName: "kv-prod", Events: func(b []byte) { got <- b }})
	c := e.client(t, nil)
	now := time.Now()
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	day := 24 * time.Hour
	for _, s := range []struct {
		name string
		exp  *time.Time
	}{
		{"near", at(10 * day)},
		{"later", at(40 * day)},
		{"expired", at(-time.Hour)},
		{"forever", nil},
		{"gone", at(5 * day)},
	} {
		set(t, c, s.name, "expiry-secret-value", azsecrets.SetSecretParameters{SecretAttributes: &azsecrets.SecretAttributes{Expires: s.exp}})
	}
	if _, err := c.DeleteSecret(ctxT(t), "gone", nil); err != nil {
		t.Fatal(err)
	}
	drain := func() {
		for {
			select {
			case <-got:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	drain() // the SecretNewVersionCreated events

	// collect reads n events and returns them by object name, failing on any extra one.
	collect := func(n int) map[string]string {
		t.Helper()
		out := map[string]string{}
		for i := 0; i < n; i++ {
			select {
			case b := <-got:
				if strings.Contains(string(b), "expiry-secret-value") {
					t.Fatal("an event carries the value")
				}
				var ev struct {
					EventType string `json:"eventType"`
					Subject   string `json:"subject"`
					Data      struct {
						ObjectName string
						EXP        any
					} `json:"data"`
				}
				if err := json.Unmarshal(b, &ev); err != nil || ev.Data.ObjectName != ev.Subject || ev.Data.EXP == nil {
					t.Fatalf("event %s: %v", b, err)
				}
				out[ev.Subject] = ev.EventType
				if ev.EventType == "Microsoft.KeyVault.SecretNearExpiry" {
					d, err := event.DecodeEventGrid(b)
					if err != nil || d.Change == nil || d.Change.Kind != event.KindRotate || d.Change.Name != ev.Subject || d.Change.Vault != "kv-prod" {
						t.Errorf("keyferry decodes %s as %+v, %v", b, d.Change, err)
					}
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%d events, want %d", i, n)
			}
		}
		select {
		case b := <-got:
			t.Fatalf("an extra event: %s", b)
		case <-time.After(300 * time.Millisecond):
		}
		return out
	}

	steps := []struct {
		name   string
		before func()
		clock  time.Time
		want   map[string]string
	}{
		{"first scan", nil, now, map[string]string{
			"near": "Microsoft.KeyVault.SecretNearExpiry", "expired": "Microsoft.KeyVault.SecretExpired"}},
		{"again: once per version", nil, now, map[string]string{}},
		{"25 days on", nil, now.Add(25 * day), map[string]string{
			"later": "Microsoft.KeyVault.SecretNearExpiry", "near": "Microsoft.KeyVault.SecretExpired"}},
		{"a new version without exp", func() {
			set(t, c, "later", "expiry-secret-value", azsecrets.SetSecretParameters{})
			drain()
		}, now.Add(60 * day), map[string]string{}},
		{"a new version near expiry", func() {
			set(t, c, "forever", "expiry-secret-value", azsecrets.SetSecretParameters{
				SecretAttributes: &azsecrets.SecretAttributes{Expires: at(20 * day)}})
			drain()
		}, now, map[string]string{"forever": "Microsoft.KeyVault.SecretNearExpiry"}},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		n := e.srv.PublishExpiryEvents(st.clock)
		if n != len(st.want) {
			t.Errorf("%s: published %d events, want %d", st.name, n, len(st.want))
		}
		if got := collect(len(st.want)); fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Errorf("%s: events %v, want %v", st.name, got, st.want)
		}
	}
}
