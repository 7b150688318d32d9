package azkv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"
)

// NearExpiryWindow is how long before a secret version's expiry (its exp attribute) the vault's system
// topic publishes Microsoft.KeyVault.SecretNearExpiry: 30 days, as the service does.
const NearExpiryWindow = 30 * 24 * time.Hour

// expirySent records the expiry events already published, by event kind and version id (version ids are
// random and unique across vaults), so that each is published once per version.
var expirySent = struct {
	mu sync.Mutex
	m  map[string]bool
}{m: map[string]bool{}}

// PublishExpiryEvents does what the service's background job does for secrets: for the current version of
// every secret that is not deleted and has an expiry, it publishes Microsoft.KeyVault.SecretNearExpiry
// once now is within NearExpiryWindow of the expiry, and Microsoft.KeyVault.SecretExpired once the expiry
// has passed — each once per version (a new current version, or a new exp, is a new chance only for a
// version not yet announced). Secrets without exp publish neither, as with the real service. It returns
// how many events it published (each on its own goroutine, like every event of the emulator). The service
// runs the job on its own; here a test calls it, with the time it wants the vault to believe it is.
func (s *Server) PublishExpiryEvents(now time.Time) int {
	if s.opts.Events == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, o := range s.secrets.inState(stateActive, time.Now()) {
		v := o.latest()
		if v == nil || v.Attrs.Expires == nil {
			continue
		}
		exp := time.Unix(*v.Attrs.Expires, 0)
		kind := ""
		switch {
		case !now.Before(exp):
			kind = "SecretExpired"
		case !now.Before(exp.Add(-NearExpiryWindow)):
			kind = "SecretNearExpiry"
		default:
			continue
		}
		key := kind + "/" + v.ID
		expirySent.mu.Lock()
		sent := expirySent.m[key]
		expirySent.m[key] = true
		expirySent.mu.Unlock()
		if sent {
			continue
		}
		s.publish(kind, o.Name, v)
		n++
	}
	return n
}

// publish sends the event the vault's Event Grid system topic would send about a secret version (kind:
// SecretNewVersionCreated, SecretNearExpiry, SecretExpired). Call with s.mu held.
func (s *Server) publish(kind, name string, v *version[secretPayload]) {
	if s.opts.Events == nil {
		return
	}
	vault := s.opts.VaultName
	if vault == "" {
		vault = "local"
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	var nbf, exp any
	if v.Attrs.NotBefore != nil {
		nbf = *v.Attrs.NotBefore
	}
	if v.Attrs.Expires != nil {
		exp = *v.Attrs.Expires
	}
	ev := map[string]any{
		"id":        hex.EncodeToString(id),
		"topic":     "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/Microsoft.KeyVault/vaults/" + vault,
		"subject":   name,
		"eventType": "Microsoft.KeyVault." + kind,
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"data": map[string]any{
			"Id":        s.baseURL + "/secrets/" + name + "/" + v.ID,
			"VaultName": vault, "ObjectType": "Secret", "ObjectName": name, "Version": v.ID,
			"NBF": nbf, "EXP": exp,
		},
		"dataVersion": "1", "metadataVersion": "1",
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	go s.opts.Events(b)
}
