package azkv

import (
	"encoding/json"
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
