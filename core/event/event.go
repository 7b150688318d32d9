// Package event decodes what the clouds deliver to keyferry's functions (EventBridge events, Event Grid
// events, Pub/Sub messages from Secret Manager, schedules) into a few core types. It holds no business
// logic: a decoded Change only says which secret in which store may have changed; the core re-reads the
// store (events are at-least-once, unordered and never carry values).
package event

import (
	"errors"
	"fmt"
	"time"
)

// Kind is what happened to a secret, as far as the event says.
type Kind string

const (
	KindWrite  Kind = "write"  // a new value may be current (create, put, update, stage move to current, version added/enabled)
	KindDelete Kind = "delete" // the secret (or its current version) may be gone
	KindRotate Kind = "rotate" // the cloud asks for a rotation (GCP SECRET_ROTATE, Azure SecretNearExpiry)
)

// Cloud services a Change can come from.
const (
	ServiceSecretsManager = "aws-secretsmanager"
	ServiceSSM            = "aws-ssm"
	ServiceKeyVault       = "azure-keyvault"
	ServiceSecretManager  = "gcp-secretmanager"
)

// Change says that a secret in a cloud store may have changed.
type Change struct {
	ID      string // the event's id, for logs
	Service string // one of the Service* constants (they equal the store types of keyferry.yaml)
	Account string // AWS account id; "" where the event does not say
	Region  string // AWS region
	Vault   string // Azure Key Vault name (the first label of the vault's host name)
	Project string // GCP project as the event names it (number or id)
	Name    string // the secret's name as its store names it (never an ARN or a full resource name)
	Version string // the version the event is about, when it says; a hint only
	Kind    Kind
	Time    time.Time // when the change happened, per the event
	Reason  string    // the event's own name for what happened (eventName, eventType), for logs
}

// String renders the change for logs. It holds no value (events carry none).
func (c Change) String() string {
	where := c.Region
	switch c.Service {
	case ServiceKeyVault:
		where = c.Vault
	case ServiceSecretManager:
		where = c.Project
	}
	s := fmt.Sprintf("%s %s %s/%s", c.Kind, c.Service, where, c.Name)
	if c.Version != "" {
		s += "@" + c.Version
	}
	if c.Reason != "" {
		s += " (" + c.Reason + ")"
	}
	return s
}

// Schedule is a timer invocation: sweep, renew, rotate.
type Schedule struct {
	Job  string    // "sweep" unless the schedule's input names another job
	Time time.Time // the scheduled time, when the platform says
}

// ErrIgnored marks an event that is well-formed but needs no action (a failed API call, a Pub/Sub topic
// test message, a label move that is not to the current version). Handlers acknowledge it and log why.
var ErrIgnored = errors.New("event needs no action")

// Ignored returns an error wrapping ErrIgnored with the reason.
func Ignored(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrIgnored, fmt.Sprintf(format, args...))
}

// DecodeError is a malformed or unknown event. Handlers log it and acknowledge the event: redelivering
// it would fail the same way.
type DecodeError struct {
	Source string // what was being decoded, e.g. "EventBridge event"
	Reason string // what is wrong, never the payload itself
}

func (e *DecodeError) Error() string { return "malformed " + e.Source + ": " + e.Reason }
