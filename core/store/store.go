// Package store defines how keyferry reads and writes secrets in every backend: one narrow Store
// interface, the limits each backend declares, typed errors, and small optional capabilities.
//
// Each backend lives in its own package below this one (awssm, awsssm, azkv, gcpsm, vaultkv, file) and
// passes the same contract suite (storetest).
package store

import (
	"context"
	"errors"
	"iter"
	"time"
)

// Store is one configured secret store.
type Store interface {
	// Name is the configured name of this store (the key under `stores:` in keyferry.yaml).
	Name() string
	// Type is the backend type, e.g. "aws-secretsmanager".
	Type() string
	// Limits declares what the store can hold; Put refuses anything outside them before any call.
	Limits() Limits

	// Get reads the current value and its metadata.
	Get(ctx context.Context, name string) (Secret, error)
	// Put writes a new current value (creating the secret if needed) and returns the new metadata.
	Put(ctx context.Context, name string, v Value, opts PutOptions) (Metadata, error)
	// Describe reads metadata only; it never reads the value.
	Describe(ctx context.Context, name string) (Metadata, error)
	// List yields metadata of every secret matching opts, fetching pages lazily; it never reads values.
	List(ctx context.Context, opts ListOptions) iter.Seq2[Metadata, error]
	// Delete removes the secret (softly where the store can; see DeleteOptions).
	Delete(ctx context.Context, name string, opts DeleteOptions) error
}

// Secret is a value with its metadata.
type Secret struct {
	Value    Value
	Metadata Metadata
}

// Metadata is everything about a secret but its value.
type Metadata struct {
	Name        string
	Version     string    // the store's id of the current version ("" if the store keeps none)
	Created     time.Time // creation of the secret, if known
	Updated     time.Time // creation of the current version, if known
	ContentType string    // as the store records it, if it does
	Binary      bool      // the current value is binary (when the store can tell without reading it)
	Tags        map[string]string
	// Provenance is keyferry's record of where the current value came from; nil when keyferry
	// did not write it (or the store shows no record).
	Provenance *Provenance
}

// PutOptions go with a write.
type PutOptions struct {
	// Tags are user tags/labels set with the value. Where tags belong to the secret (AWS, SSM, GCP, Vault,
	// the file store) Put adds or changes the given keys and keeps the others; removing a user tag is
	// MetadataUpdater's job, because tags may drive access control and belong to someone else. Where tags
	// belong to each version (Azure Key Vault) the new version carries exactly these.
	Tags        map[string]string
	ContentType string      // for stores that record one; binary marks are added by the adapter
	Provenance  *Provenance // keyferry's record, stored in tags/annotations/custom metadata
}

// ListOptions narrow a listing. Filters a store cannot apply server-side are applied client-side.
type ListOptions struct {
	Prefix   string            // name prefix
	Tags     map[string]string // every tag must match
	PageSize int               // 0: the adapter's default
}

// DeleteOptions control deletion.
type DeleteOptions struct {
	// Force deletes without recovery where the store offers recovery (AWS force delete, Azure purge).
	Force bool
	// RecoveryWindow asks for this recovery window where the store lets the caller choose (AWS: 7–30 days).
	RecoveryWindow time.Duration
}

// VersionInfo describes one version of a secret.
type VersionInfo struct {
	Version string
	Created time.Time
	Enabled bool
	Stages  []string // version stages or aliases, where the store has them
}

// Versioned is implemented by stores that keep old versions.
type Versioned interface {
	// GetVersion reads one version's value.
	GetVersion(ctx context.Context, name, version string) (Secret, error)
	// Versions yields the secret's versions, newest first.
	Versions(ctx context.Context, name string) iter.Seq2[VersionInfo, error]
}

// Staged is implemented by stores with version stages (AWS Secrets Manager).
type Staged interface {
	// PutStaged writes a version with the given id (idempotent on it) and stages, leaving the current stage alone.
	PutStaged(ctx context.Context, name, versionID string, v Value, stages []string) (VersionInfo, error)
	// MoveStage moves stage to versionID, from whichever version holds it.
	MoveStage(ctx context.Context, name, stage, versionID string) error
}

// Recoverable is implemented by stores whose deletes are soft (AWS recovery window, Azure soft delete).
type Recoverable interface {
	Recover(ctx context.Context, name string) error
	Purge(ctx context.Context, name string) error
}

// MetadataUpdater is implemented by stores that can change tags and provenance without writing a value.
type MetadataUpdater interface {
	UpdateMetadata(ctx context.Context, name string, tags map[string]string, prov *Provenance) error
}

// Creator is implemented by stores that can create a secret with its first value in fewer calls than Put
// when the caller already knows it does not exist (Put must look first). Create fails with
// ErrAlreadyExists when the secret exists, writing nothing.
type Creator interface {
	Create(ctx context.Context, name string, v Value, opts PutOptions) (Metadata, error)
}

// ValueReader is implemented by stores that can read the current value and its version in fewer calls
// than Get, without the metadata (which a caller holding a listing already has).
type ValueReader interface {
	GetValue(ctx context.Context, name string) (v Value, version string, err error)
}

// SyncMarker is implemented by stores that can set the Synced mark (KeySynced) in one call, without reading
// or replacing the other tags first. The replication engine prefers it to MetadataUpdater for marks.
type SyncMarker interface {
	MarkSynced(ctx context.Context, name, synced string) error
}

// CompareAndSwapper is implemented by stores that can write only if the current version is the expected one
// (Vault check-and-set, the file store). ifVersion "" means "only if the secret does not exist". Secret
// Manager cannot: AddSecretVersion takes no etag (only the secret's metadata updates do), so a GCP write
// that races another lands as one more version, and the engine's in-flight checks handle it.
type CompareAndSwapper interface {
	PutIf(ctx context.Context, name string, v Value, opts PutOptions, ifVersion string) (Metadata, error)
}

// CheckPut checks a write against the store's limits before any call goes out, and returns a typed
// *Error naming the store and the secret.
func CheckPut(s Store, name string, v Value, opts PutOptions) error {
	l := s.Limits()
	err := l.CheckName(name)
	if err == nil {
		err = l.CheckValue(v)
	}
	if err == nil {
		reserved := ProvenanceEntries(opts.Provenance)
		if l.ProvenanceApart {
			reserved = 0
		}
		err = l.CheckTags(opts.Tags, reserved)
	}
	return Annotate(err, s.Name(), "put", name)
}

// CheckName checks a name against the store's limits, for reads and deletes.
func CheckName(s Store, op, name string) error {
	return Annotate(s.Limits().CheckName(name), s.Name(), op, name)
}

// CredentialFailure is implemented by errors saying that the credentials for a store could not be
// obtained at all (core/identity's federation errors): the fix is the trust between the clouds, not the
// store's permissions. Annotate gives such errors the kind ErrPermissionDenied and the failure's own hint.
type CredentialFailure interface {
	error
	// CredentialHint says what to fix.
	CredentialHint() string
}

// Annotate fills in the store, op and name of a *Error (or wraps another error as ErrUnavailable). An
// error caused by a CredentialFailure becomes ErrPermissionDenied with that failure's hint, whatever the
// adapter made of the service's answer to it.
func Annotate(err error, storeName, op, name string) error {
	if err == nil {
		return nil
	}
	var c Error
	var se *Error
	if errors.As(err, &se) {
		c = *se
	} else {
		c = Error{Kind: ErrUnavailable, Err: err}
	}
	if c.Store == "" {
		c.Store = storeName
	}
	if c.Op == "" {
		c.Op = op
	}
	if c.Name == "" {
		c.Name = name
	}
	var cf CredentialFailure
	if errors.As(err, &cf) {
		c.Kind, c.Detail, c.Hint = ErrPermissionDenied, "no credentials: "+cf.Error(), cf.CredentialHint()
	}
	return &c
}
