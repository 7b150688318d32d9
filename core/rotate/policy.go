package rotate

// The package documentation is in doc.go.

import (
	"time"

	"github.com/keyferry/keyferry/core/generate"
)

// Policy is one entry of `rotate:` in keyferry.yaml: which secrets rotate, how often, and how the new value
// is made. The configuration loader fills it; the rotation engine never reads the file.
type Policy struct {
	Name  string   // the policy's name, unique (lower-case letters, digits, hyphens); audit records carry it
	Store string   // the primary store: where the rotated secret lives
	Match []string // secret name globs in Store (the same syntax as replicate rules)

	// Schedule: exactly one of Every and Cron.
	Every time.Duration // e.g. 30 days
	Cron  string        // a standard 5-field cron expression (UTC)

	Generate generate.Spec // how the new value is made

	// Test, if set, names a verification hook run between landing the pending value and promoting it
	// (e.g. a database login with the new credential). Hooks are registered with the engine by name.
	Test string

	// Grace is how long the previous value stays readable (AWSPREVIOUS / the previous version) before it
	// may be removed; 0 means the store's default (versions are kept).
	Grace time.Duration
	// MaxAge is the policy limit on a secret's age: `keyferry validate --live` lists older secrets, and
	// the next timer rotates them. 0 means no limit beyond the schedule.
	MaxAge time.Duration
	// LeaseTTL bounds how long one rotation may hold the secret's lease; 0 means 15 minutes.
	LeaseTTL time.Duration

	Line int // where the policy is in the configuration file
}
