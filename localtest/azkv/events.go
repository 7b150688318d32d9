package azkv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// publish sends the event the vault's Event Grid system topic would send for a new version.
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
