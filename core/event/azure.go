package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// KeyVaultEventData is the data of a Key Vault event (PascalCase keys; encoding/json matches any case).
type KeyVaultEventData struct {
	ID         string    `json:"Id"` // https://<vault>.vault.azure.net/secrets/<name>/<version>
	VaultName  string    `json:"VaultName"`
	ObjectType string    `json:"ObjectType"`
	ObjectName string    `json:"ObjectName"`
	Version    string    `json:"Version"`
	NBF        *UnixTime `json:"NBF"`
	EXP        *UnixTime `json:"EXP"`
}

// UnixTime accepts seconds since the epoch as a number, a string, or null (Event Grid sends all three).
type UnixTime struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (u *UnixTime) UnmarshalJSON(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if s == "" || s == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e11 {
		return errors.New("not a Unix time")
	}
	u.Time = time.Unix(int64(f), 0).UTC()
	return nil
}

// ValidationRequest is Event Grid's subscription-validation handshake: answer with
// {"validationResponse": Code}.
type ValidationRequest struct{ Code string }

func (v *ValidationRequest) Error() string { return "Event Grid subscription validation" }

type gridEvent struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	Source      string          `json:"source"`
	Subject     string          `json:"subject"`
	EventType   string          `json:"eventType"`
	Type        string          `json:"type"`
	EventTime   time.Time       `json:"eventTime"`
	Time        time.Time       `json:"time"`
	SpecVersion string          `json:"specversion"`
	Data        json.RawMessage `json:"data"`
}

// SplitEventGrid returns the events of an Event Grid delivery or a Functions binding value: one event,
// an array of events, or either wrapped in a JSON string.
func SplitEventGrid(raw []byte) ([]json.RawMessage, error) {
	const what = "Event Grid delivery"
	if len(raw) > MaxEventBytes {
		return nil, &DecodeError{Source: what, Reason: "larger than 1 MiB"}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &DecodeError{Source: what, Reason: jsonReason(err)}
		}
		raw = bytes.TrimSpace([]byte(s))
	}
	if len(raw) > 0 && raw[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, &DecodeError{Source: what, Reason: jsonReason(err)}
		}
		return list, nil
	}
	if len(raw) > 0 && raw[0] == '{' {
		return []json.RawMessage{raw}, nil
	}
	return nil, &DecodeError{Source: what, Reason: "neither an event nor a list of events"}
}

// DecodeEventGrid decodes one Key Vault event, in the Event Grid or the CloudEvents 1.0 schema.
func DecodeEventGrid(raw []byte) (Decoded, error) {
	const what = "Event Grid event"
	if _, err := object(raw, what); err != nil {
		return Decoded{}, err
	}
	var e gridEvent
	if err := json.Unmarshal(raw, &e); err != nil {
		return Decoded{}, &DecodeError{Source: what, Reason: jsonReason(err)}
	}
	typ, at := e.EventType, e.EventTime
	if e.SpecVersion != "" {
		typ, at = e.Type, e.Time
	}
	if typ == "Microsoft.EventGrid.SubscriptionValidationEvent" {
		var d struct {
			ValidationCode string `json:"validationCode"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil || d.ValidationCode == "" {
			return Decoded{}, &DecodeError{Source: what, Reason: "subscription validation without a validationCode"}
		}
		return Decoded{}, &ValidationRequest{Code: d.ValidationCode}
	}
	kind, ok := map[string]Kind{
		"Microsoft.KeyVault.SecretNewVersionCreated": KindWrite,
		"Microsoft.KeyVault.SecretNearExpiry":        KindRotate,
	}[typ]
	if !ok {
		if strings.HasPrefix(typ, "Microsoft.KeyVault.") {
			return Decoded{}, Ignored("%s is not an event keyferry acts on", safe(typ))
		}
		return Decoded{}, &DecodeError{Source: what, Reason: "unknown event type " + safe(typ)}
	}
	var d KeyVaultEventData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return Decoded{}, &DecodeError{Source: what, Reason: "data: " + jsonReason(err)}
	}
	if d.ObjectType != "" && d.ObjectType != "Secret" {
		return Decoded{}, Ignored("%s object events are handled elsewhere", safe(d.ObjectType))
	}
	name, vault := d.ObjectName, d.VaultName
	if u, err := url.Parse(d.ID); err == nil && u.Host != "" {
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		if vault == "" {
			vault, _, _ = strings.Cut(u.Hostname(), ".")
		}
		if name == "" && len(parts) >= 2 && parts[0] == "secrets" {
			name = parts[1]
		}
	}
	if name == "" {
		name = e.Subject
	}
	if name == "" {
		return Decoded{}, &DecodeError{Source: what, Reason: "no secret name (ObjectName, Id or subject)"}
	}
	return Decoded{Change: &Change{ID: e.ID, Service: ServiceKeyVault, Vault: vault, Name: name, Version: d.Version,
		Kind: kind, Time: at, Reason: strings.TrimPrefix(typ, "Microsoft.KeyVault.")}}, nil
}
