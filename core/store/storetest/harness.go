// Package storetest is the one contract suite every Store adapter runs against its local store.
//
// An adapter's test builds a Harness (its store wired to the local emulator behind the fault layer)
// and calls Run. The suite checks exact round-trips of text and binary values (invalid UTF-8 included,
// the largest value the store allows), metadata and provenance round-trips, version order, list paging,
// delete semantics, the same typed error for the same bad input, that every declared limit is refused
// before any call goes out, that describe and list never read a value, and that no test value appears
// in any captured log line or error message.
package storetest

import (
	"context"

	"github.com/keyferry/keyferry/core/store"
)

// Harness is what an adapter hands the contract suite.
type Harness struct {
	// Store under test, wired to its local store. Each Run uses fresh, unique secret names.
	Store store.Store

	// Calls returns the per-API call counters of the fault layer in front of the store (every call that
	// reached the wire). Nil for stores with no wire (the file store); the suite then checks the store's
	// directory instead through Touched.
	Calls func() map[string]int64
	// Touched, for stores without a wire, reports how many writes reached storage so far.
	Touched func() int64

	// ValueReadAPIs are the API names (as the fault layer counts them) that return a secret value.
	// Describe and List must never call them.
	ValueReadAPIs []string
	// ListAPIs are the API names that return a page of a listing. Paging is checked by counting them.
	ListAPIs []string
	// ServerPaging is true when the service pages listings (the suite then expects more than one list
	// call for a listing longer than a page).
	ServerPaging bool

	// SoftDelete is true when a non-forced Delete keeps the secret recoverable (AWS recovery window, Azure
	// soft delete, Vault KV soft delete): Get then fails with ErrSoftDeleted (or ErrNotFound) and the store
	// implements store.Recoverable, whose Recover brings the value back.
	SoftDelete bool
	// DeleteBlocksName is true when a write to a soft-deleted name fails with ErrSoftDeleted until the
	// secret is recovered or purged (AWS, Azure); false when the store accepts a new version (Vault).
	DeleteBlocksName bool

	// Logs returns everything logged so far by the adapter and the emulator processes behind it.
	Logs func() string

	// Unreachable, if set, returns the same store pointed at an address nothing listens on.
	Unreachable func() store.Store
	// Denied, if set, returns the same store with credentials the service refuses.
	Denied func() store.Store
	// Throttle, if set, makes the fault layer throttle every call (on) or stop doing so (off).
	Throttle func(on bool)

	// Cleanup, if set, is called with every name the suite created, after the suite.
	Cleanup func(ctx context.Context, names []string)
}
